using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Generation;

/// <summary>
/// Sampling settings are <see cref="SamplingParams"/>; this keeps the old spelling <c>SamplingOptions.Greedy</c> working
/// for existing callers and holds nothing of its own.
/// </summary>
public static class SamplingOptions
{
    public static SamplingParams Greedy => SamplingParams.Greedy;
}
