namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// Over how many blocks a decode step's attention spreads each token's keys (paged_attention's <c>splits</c>). A step
/// of few tokens has one block per (token, KV head group): 8 for a lone token of a model with 8 KV heads, so a long
/// context would be read by 8 of the GPU's SMs, one chunk of 32 keys after another. Split, each token's keys go to
/// about two blocks an SM, up to <see cref="MaxSplits"/>, each block taking a contiguous run of whole spans of 256 keys
/// (8 warps x 32): a context of up to 256 keys stays in one block, which writes its output directly, so short
/// contexts pay nothing. Steps with prefill tokens have blocks enough and are not split.
/// </summary>
internal sealed class AttentionSplits
{
    /// <summary>The most blocks a token's keys go to: at 16, a 4,096-key context gives each block one span.</summary>
    public const int MaxSplits = 16;

    private readonly int _targetBlocks;
    private readonly int _headGroups;

    /// <param name="multiprocessors">The GPU's SMs.</param>
    /// <param name="headGroups">Attention blocks a token has unsplit: query heads over the kernel's GQA group.</param>
    /// <param name="maxTokens">The most tokens a step has.</param>
    /// <param name="enabled">False: every step runs unsplit (<see cref="CudaRunnerOptions.SplitDecodeAttention"/>).</param>
    public AttentionSplits(int multiprocessors, int headGroups, int maxTokens, bool enabled)
    {
        _targetBlocks = enabled ? 2 * multiprocessors : 0;
        _headGroups = headGroups;
        for (int tokens = 1; tokens <= maxTokens && For(tokens, decode: true) > 1; tokens++)
        {
            PartialRecords = Math.Max(PartialRecords, (long)tokens * For(tokens, decode: true) * headGroups);
            Counters = tokens * headGroups;
        }
    }

    /// <summary>Split partials a step can write, over every (token, head group, split); each holds the group's heads.</summary>
    public long PartialRecords { get; }

    /// <summary>Counters of finished splits a step can use, one per (token, head group).</summary>
    public int Counters { get; }

    /// <summary>Splits of each token's keys in a step of <paramref name="tokens"/>: 1 unless it is a decode step with too few blocks.</summary>
    public int For(int tokens, bool decode) =>
        decode ? Math.Clamp((_targetBlocks + (tokens * _headGroups) - 1) / (tokens * _headGroups), 1, MaxSplits) : 1;
}
