using System.Net.Http.Headers;
using System.Text.Json;
using Kiln.Scaler.Contracts;

namespace Kiln.Scaler.Sources;

public interface IPodStatsSource
{
    Task<PodStatsDocument> ReadAsync(string podIp, int port, string path, CancellationToken cancellationToken);
}

/// <summary>GET http://POD:PORT/api/stats, with the bearer key when one is configured (pods with keys refuse stats without).</summary>
public sealed class HttpPodStatsSource(HttpClient http, string? key = null) : IPodStatsSource
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task<PodStatsDocument> ReadAsync(string podIp, int port, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(podIp);
        var host = podIp.Contains(':', StringComparison.Ordinal) ? $"[{podIp}]" : podIp;
        var uri = new Uri($"http://{host}:{port}{path}");
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (!string.IsNullOrWhiteSpace(key))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key.Trim());
        }

        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<PodStatsDocument>(Json, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidDataException($"{uri} answered null");
    }
}
