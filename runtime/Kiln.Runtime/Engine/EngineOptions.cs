namespace Kiln.Runtime.Engine;

/// <summary>How the engine shares its memory and steps among requests. Defaults suit a small CPU host.</summary>
public sealed record EngineOptions
{
    /// <summary>Tokens per KV block.</summary>
    public int BlockSize { get; init; } = 16;

    /// <summary>
    /// KV pool size in bytes; when null, blocks for <see cref="MaxSequences"/> sequences of the full context length,
    /// at most <see cref="KvCacheMemoryFraction"/> of the memory available (the process's, or the GPU's free memory).
    /// </summary>
    public long? KvCacheBytes { get; init; }

    /// <summary>The cap on a pool not sized in bytes, as a share of the memory available.</summary>
    public double KvCacheMemoryFraction { get; init; } = 0.25;

    /// <summary>Token budget of one step (vLLM's max_num_batched_tokens): decodes plus prefill chunks.</summary>
    public int MaxBatchedTokens { get; init; } = 256;

    /// <summary>Most sequences running at once (vLLM's max_num_seqs).</summary>
    public int MaxSequences { get; init; } = 64;

    /// <summary>
    /// Most sequences (samples of requests) waiting for admission beyond the running slots: the engine takes
    /// <see cref="MaxSequences"/> plus this many at once, and beyond that submissions fail fast as overloaded. A burst
    /// of that many is admitted whole, though prefill starts only a few of them a step.
    /// </summary>
    public int MaxWaitingRequests { get; init; } = 256;

    /// <summary>
    /// Most sequences one caller (<see cref="GenerationRequest.Caller"/>: an API key, a client address) may have in
    /// the engine, running or waiting; 0 means no bound beyond the engine's. One caller then cannot take the whole queue.
    /// </summary>
    public int MaxSequencesPerCaller { get; init; }

    /// <summary>
    /// Events (about one a token) a caller may leave unread per sample before its request stops being scheduled
    /// (its KV blocks kept): a client that stops reading costs no more compute or memory than this.
    /// </summary>
    public int OutputBufferTokens { get; init; } = 256;

    /// <summary>Seconds a request may stay stopped on a full output buffer before it is cancelled; 0 means never.</summary>
    public double StalledReaderTimeoutSeconds { get; init; } = 60;

    /// <summary>Longest prompt plus output of one request; 0 means the model's context length.</summary>
    public int MaxModelLength { get; init; }

    public bool PrefixCaching { get; init; } = true;

    /// <summary>Ranks of the tensor-parallel group (threads on CPU).</summary>
    public int TensorParallelSize { get; init; } = 1;

    /// <summary>CPU worker threads in total; 0 means one per processor.</summary>
    public int Threads { get; init; }

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BlockSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxBatchedTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxSequences);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxWaitingRequests);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxSequencesPerCaller);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(OutputBufferTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(StalledReaderTimeoutSeconds);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxModelLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(TensorParallelSize);
        if (KvCacheBytes is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(KvCacheBytes), KvCacheBytes, "the KV pool needs a positive size");
        }

        if (KvCacheMemoryFraction is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(KvCacheMemoryFraction), KvCacheMemoryFraction, "must be in (0, 1]");
        }
    }
}
