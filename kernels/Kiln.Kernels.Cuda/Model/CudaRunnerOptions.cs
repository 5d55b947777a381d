namespace Kiln.Kernels.Cuda.Model;

/// <summary>How a <see cref="CudaModelRunner"/> sizes its buffers and runs its steps.</summary>
public sealed record CudaRunnerOptions
{
    /// <summary>Which GPU (CUDA ordinal).</summary>
    public int Device { get; init; }

    /// <summary>Most tokens in one step (prefill chunks plus decodes).</summary>
    public int MaxBatchTokens { get; init; } = 2048;

    /// <summary>Most rows of logits one step returns: sequences, or tokens when every position's logits are asked for.</summary>
    public int MaxLogitRows { get; init; } = 256;

    /// <summary>Longest context; 0 means the model's.</summary>
    public int MaxContext { get; init; }

    /// <summary>Capture decode steps as CUDA graphs, one per batch size, on first use.</summary>
    public bool CudaGraphs { get; init; } = true;

    /// <summary>Decode batches above this size run without a graph.</summary>
    public int MaxGraphBatch { get; init; } = 256;

    /// <summary>Let each kernel overlap the end of the previous one (programmatic dependent launch) on sm_90 and later.</summary>
    public bool ProgrammaticLaunch { get; init; } = true;

    /// <summary>
    /// At up to 8 tokens a step (decode), run each layer in five kernels instead of nine: the RMSNorms inside the
    /// products that follow them, RoPE and the cache writes inside the QKV product, the residual adds inside the
    /// output and down products, SwiGLU inside the gate/up product. Under tensor parallelism rank 0 adds its partial
    /// outputs into the stream, the other ranks store theirs over it, and the all-reduce sums them.
    /// </summary>
    public bool FusedSmallBatch { get; init; } = true;

    /// <summary>
    /// Spread each token's keys over several attention blocks in decode steps of few tokens (<see cref="AttentionSplits"/>),
    /// so a long context at batch 1 is read by many SMs rather than one block per KV head.
    /// </summary>
    public bool SplitDecodeAttention { get; init; } = true;

    /// <summary>
    /// bf16 elements of the scratch that f16 and Q8 matrices are expanded into, a slice of rows at a time, for the
    /// cuBLAS products of steps over 8 tokens (32 MB by default).
    /// </summary>
    public long CompactExpandElements { get; init; } = 16L << 20;

    /// <summary>
    /// At warm-up, time the interchangeable matrix-vector kernels of every decode-step product (<see cref="GemvChoices"/>),
    /// keep the fastest for this GPU, and check them against the defaults in whole graph steps: a few dozen steps
    /// (expected well under a second on a 1B model; not yet timed on a GPU).
    /// </summary>
    public bool TuneProducts { get; init; } = true;

    /// <summary>Products over smaller matrices keep the default kernel: their time is launch latency, not the choice.</summary>
    public long TuneMinimumBytes { get; init; } = 4L << 20;

    /// <summary>Where compiled kernels are cached; null means <see cref="Device.KernelCompiler.DefaultCacheDirectory"/>.</summary>
    public string? KernelCacheDirectory { get; init; }
}
