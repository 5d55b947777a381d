namespace Kiln.Scaler.Contracts;

/// <summary>
/// The JSON a Kiln pod answers on its stats endpoint (default <c>GET http://POD_IP:80/api/stats</c>): the engine's
/// <c>EngineStats</c> serialized with web defaults (camelCase). The scaler and the gateway read only these fields and
/// ignore the rest, so the contract is: <c>{"state":string,"waitingRequests":int,"runningSequences":int,
/// "pendingPromptTokens":long,"pendingDecodeTokens":long,"tokenBacklog":long,"kvBlocksUsed":int,"kvBlocksTotal":int}</c>;
/// tokenBacklog, when present, wins over the sum of the two.
/// </summary>
public sealed record PodStatsDocument
{
    /// <summary>The model's state: <c>loading</c>, <c>ready</c>, <c>failed</c>, or <c>draining</c> once the pod is stopping.</summary>
    public string? State { get; init; }

    public int WaitingRequests { get; init; }
    public int RunningSequences { get; init; }
    public long PendingPromptTokens { get; init; }
    public long PendingDecodeTokens { get; init; }
    public long? TokenBacklog { get; init; }
    public int KvBlocksUsed { get; init; }
    public int KvBlocksTotal { get; init; }

    public long Backlog => TokenBacklog ?? (PendingPromptTokens + PendingDecodeTokens);
}
