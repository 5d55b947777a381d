namespace Kiln.Runtime.Engine;

/// <summary>
/// A snapshot of the engine's load, cheap to read every second (the KEDA scaler and /metrics poll it).
/// The token backlog is the work still owed: prompt tokens not yet prefilled plus output tokens not yet generated
/// (counting each running sample's remaining max_tokens).
/// </summary>
public sealed record EngineStats
{
    public int WaitingRequests { get; init; }

    public int RunningSequences { get; init; }

    public long PendingPromptTokens { get; init; }

    public long PendingDecodeTokens { get; init; }

    public long TokenBacklog => PendingPromptTokens + PendingDecodeTokens;

    public int KvBlocksTotal { get; init; }

    public int KvBlocksUsed { get; init; }

    public int KvBlocksFree { get; init; }

    public int KvBlocksCached { get; init; }

    public double PrefixCacheHitRate { get; init; }

    public double PromptTokensPerSecond { get; init; }

    public double OutputTokensPerSecond { get; init; }

    public long Preemptions { get; init; }

    public long CompletedRequests { get; init; }

    public int TensorParallelSize { get; init; }

    public IReadOnlyList<int> DeviceIds { get; init; } = [];

    public string Device { get; init; } = "cpu";
}
