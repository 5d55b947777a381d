namespace Kiln.Runtime.Engine;

/// <summary>
/// A snapshot of the engine's load, cheap to read every second (the KEDA scaler and /metrics poll it).
/// The token backlog is the work still owed: prompt tokens not yet prefilled plus output tokens not yet generated
/// (counting each running sample's remaining max_tokens).
/// </summary>
public sealed record EngineStats
{
    /// <summary>Requests not yet running: the engine's inbox and its waiting queue (preempted samples included).</summary>
    public int WaitingRequests { get; init; }

    /// <summary>Requests with at least one sample running (vLLM's num_requests_running).</summary>
    public int RunningRequests { get; init; }

    /// <summary>Samples running: a request of n samples counts n once forked.</summary>
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

    /// <summary>Requests ended, however they ended: <see cref="FinishedStop"/> + <see cref="FinishedLength"/> + <see cref="FinishedAborted"/>.</summary>
    public long CompletedRequests { get; init; }

    /// <summary>Requests whose last sample stopped on EOS, a stop token or a stop string.</summary>
    public long FinishedStop { get; init; }

    /// <summary>Requests whose last sample reached max_tokens or the context length.</summary>
    public long FinishedLength { get; init; }

    /// <summary>Requests cancelled (the caller went away, a stalled reader timed out, the engine stopped) or failed.</summary>
    public long FinishedAborted { get; init; }

    /// <summary>Prompt tokens of the requests admitted so far (each counted once, at its first admission).</summary>
    public long PromptTokensAdmitted { get; init; }

    /// <summary>Of <see cref="PromptTokensAdmitted"/>, the tokens the prefix cache already held.</summary>
    public long PromptTokensCached { get; init; }

    /// <summary>Output tokens generated so far.</summary>
    public long OutputTokens { get; init; }

    public int TensorParallelSize { get; init; }

    public IReadOnlyList<int> DeviceIds { get; init; } = [];

    public string Device { get; init; } = "cpu";
}
