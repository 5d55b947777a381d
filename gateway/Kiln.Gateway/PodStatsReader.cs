using System.Net.Http.Headers;
using System.Text.Json;
using Kiln.Scaler.Contracts;

namespace Kiln.Gateway;

/// <summary>
/// Reads a pod's GET /api/stats (<see cref="PodStatsDocument"/>) into its <see cref="Pod"/> state and load. A pod
/// that does not answer is <c>unreachable</c>, hence not routable, until a later read succeeds. With a key (the
/// gateway's StatsKey) each read sends it as <c>Authorization: Bearer</c>: pods with keys refuse stats without one.
/// </summary>
public sealed class PodStatsReader(HttpClient http, PodDirectory directory, string? key = null)
{
    public async Task RefreshAsync(Pod pod, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var suspensions = pod.SuspensionMark();
        var mark = pod.Load.Mark();
        string state;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(pod.BaseUrl, "/api/stats"));
            if (key is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }

            using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            var stats = await response.Content.ReadFromJsonAsync<PodStatsDocument>(JsonSerializerOptions.Web, ct).ConfigureAwait(false);
            state = stats?.State ?? Pod.UnreachableState;
            if (stats is not null)
            {
                pod.Load.Read(stats, mark);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !ct.IsCancellationRequested)
        {
            state = Pod.UnreachableState;
        }

        if (pod.SetState(state, suspensions))
        {
            directory.Signal();
        }
    }

    public Task RefreshAllAsync(IEnumerable<Pod> pods, CancellationToken ct) => Task.WhenAll(pods.Select(p => RefreshAsync(p, ct)));
}
