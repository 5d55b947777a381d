namespace Kiln.Gateway;

/// <summary>
/// Fixed app instances for runs without Kubernetes (<c>Gateway:StaticPods</c>): each is listed while its
/// GET /api/ready answers 200, as the kubelet's readiness probe would decide.
/// </summary>
public sealed class StaticPodDiscovery(HttpClient http, IReadOnlyList<Uri> urls) : IPodDiscovery
{
    public string Source => $"static pods {string.Join(", ", urls)}";

    public async Task<IReadOnlyList<PodCandidate>> ListAsync(CancellationToken cancellationToken)
    {
        var ready = await Task.WhenAll(urls.Select(u => IsReadyAsync(u, cancellationToken))).ConfigureAwait(false);
        return [.. urls.Where((_, i) => ready[i]).Select(u => new PodCandidate(u.ToString().TrimEnd('/'), u))];
    }

    private async Task<bool> IsReadyAsync(Uri url, CancellationToken ct)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(url, "/api/ready"), ct).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
