namespace Kiln.Runtime.Sampling;

/// <summary>
/// One row's draw for a backend that samples where the logits are (the CUDA runner's sample_rows kernel):
/// temperature (0 is the greedy argmax), top-k (0 keeps all), top-p over what top-k kept, and a seed that already
/// folds in the request's seed, the sample and the step (<see cref="SamplingState.StepSeed"/>), so a seeded request
/// repeats its tokens on that backend.
/// </summary>
public readonly record struct DeviceSampling(float Temperature, int TopK, float TopP, ulong Seed)
{
    public bool IsGreedy => Temperature == 0;

    /// <summary>
    /// Whether a backend may draw a request's tokens where the logits are, without copying them back: greedy, or
    /// temperature with top-k and top-p; no penalties (they change the logits first), no min-p, no log-probabilities,
    /// a single sample (parallel samples fork from the first logits on the host).
    /// </summary>
    public static bool Allows(SamplingParams p) =>
        p.LogProbs is null && p.N == 1 && p.RepetitionPenalty == 1f && p.PresencePenalty == 0f && p.FrequencyPenalty == 0f &&
        (p.IsGreedy || p.MinP == 0f);

    /// <summary>The next draw of a sample in <paramref name="state"/> (<see cref="Allows"/> holds for its request).</summary>
    public static DeviceSampling For(SamplingParams p, SamplingState state) =>
        p.IsGreedy ? new DeviceSampling(0f, 0, 1f, 0) : new DeviceSampling(p.Temperature, p.TopK, p.TopP, state.StepSeed);
}
