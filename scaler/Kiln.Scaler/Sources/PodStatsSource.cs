using System.Text.Json;
using Kiln.Scaler.Contracts;

namespace Kiln.Scaler.Sources;

public interface IPodStatsSource
{
    Task<PodStatsDocument> ReadAsync(string podIp, int port, string path, CancellationToken cancellationToken);
}

public sealed class HttpPodStatsSource(HttpClient http) : IPodStatsSource
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task<PodStatsDocument> ReadAsync(string podIp, int port, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(podIp);
        var host = podIp.Contains(':', StringComparison.Ordinal) ? $"[{podIp}]" : podIp;
        var uri = new Uri($"http://{host}:{port}{path}");
        return await http.GetFromJsonAsync<PodStatsDocument>(uri, Json, cancellationToken)
            ?? throw new InvalidDataException($"{uri} answered null");
    }
}
