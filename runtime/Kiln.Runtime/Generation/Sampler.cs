namespace Kiln.Runtime.Generation;

/// <summary>
/// Greedy choice for callers that only need the argmax (reference comparisons, benchmarks). Sampling proper lives in
/// <see cref="Kiln.Runtime.Sampling.Sampler"/>; this name stays so existing callers keep compiling.
/// </summary>
public static class Sampler
{
    /// <summary>The most likely token; ties go to the lowest id.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => Sampling.Sampler.ArgMax(logits);
}
