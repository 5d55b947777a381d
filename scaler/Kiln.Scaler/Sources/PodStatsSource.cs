using System.Text.Json;

namespace Kiln.Scaler.Sources;

/// <summary>
/// The JSON a Kiln pod answers on its stats endpoint (default <c>GET http://POD_IP:80/api/stats</c>): the engine's
/// <c>EngineStats</c> serialized with web defaults (camelCase). The scaler reads only these fields and ignores the
/// rest, so the contract is: <c>{"waitingRequests":int,"runningSequences":int,"pendingPromptTokens":long,
/// "pendingDecodeTokens":long,"tokenBacklog":long}</c>; tokenBacklog, when present, wins over the sum of the two.
/// </summary>
public sealed record PodStatsDocument
{
    public int WaitingRequests { get; init; }
    public int RunningSequences { get; init; }
    public long PendingPromptTokens { get; init; }
    public long PendingDecodeTokens { get; init; }
    public long? TokenBacklog { get; init; }

    public long Backlog => TokenBacklog ?? (PendingPromptTokens + PendingDecodeTokens);
}

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
