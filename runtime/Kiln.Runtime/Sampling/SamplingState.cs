using Kiln.Runtime.Models;

namespace Kiln.Runtime.Sampling;

/// <summary>
/// The mutable part of sampling one sequence: its own random stream (so a seeded request reproduces whatever else is in
/// the batch and in whatever order the engine samples) and the token history the penalties need. Not thread-safe;
/// owned by the engine thread like the <see cref="Sampler"/>.
/// </summary>
public sealed class SamplingState
{
    private readonly HashSet<int> _promptTokens = [];
    private readonly Dictionary<int, int> _outputCounts = [];
    private readonly ulong _streamSeed;
    private DeterministicRandom _random;

    /// <param name="parameters">The request's parameters; validated here, so a state only exists for valid ones.</param>
    /// <param name="sampleIndex">Which of the request's <see cref="SamplingParams.N"/> samples this is.</param>
    public SamplingState(SamplingParams parameters, int sampleIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(sampleIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(sampleIndex, parameters.N);
        Seed = parameters.Seed ?? (ulong)Random.Shared.NextInt64();
        SampleIndex = sampleIndex;
        _streamSeed = StreamSeed(Seed, sampleIndex);
        _random = new DeterministicRandom(_streamSeed);
    }

    /// <summary>The seed in use: the request's, or the one drawn for it (log it to reproduce an unseeded run).</summary>
    public ulong Seed { get; }

    public int SampleIndex { get; }

    /// <summary>
    /// The seed of this sample's next draw on a device sampler: a function of the seed, the sample and how many
    /// tokens came before, so the draws of a seeded request repeat without any generator state on the device.
    /// </summary>
    public ulong StepSeed => new DeterministicRandom(_streamSeed ^ (0x9E3779B97F4A7C15UL * (ulong)(OutputCount + 1))).NextUInt64();

    /// <summary>How many tokens have been recorded as output.</summary>
    public int OutputCount { get; private set; }

    internal HashSet<int> PromptTokens => _promptTokens;

    internal Dictionary<int, int> OutputCounts => _outputCounts;

    /// <summary>Remembers the prompt's tokens for the repetition penalty (presence and frequency count output only).</summary>
    public void ObservePrompt(ReadOnlySpan<int> prompt)
    {
        foreach (int id in prompt)
        {
            _promptTokens.Add(id);
        }
    }

    /// <summary>
    /// Counts a token as output. <see cref="Sampler.Sample"/> does this for the token it returns; call it only for
    /// tokens chosen some other way (forced or speculative tokens that were accepted).
    /// </summary>
    public void Record(int token)
    {
        ref int count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_outputCounts, token, out _);
        count++;
        OutputCount++;
    }

    /// <summary>How many times <paramref name="token"/> is in the output so far.</summary>
    public int OutputCountOf(int token) => _outputCounts.GetValueOrDefault(token);

    /// <summary>Whether any penalty in <paramref name="p"/> would change a logit given the history so far.</summary>
    internal bool NeedsPenalties(SamplingParams p) =>
        (p.RepetitionPenalty != 1 && (_promptTokens.Count > 0 || _outputCounts.Count > 0))
        || ((p.PresencePenalty != 0 || p.FrequencyPenalty != 0) && _outputCounts.Count > 0);

    /// <summary>Uniform in [0, 1) with 53 bits, so the inverse CDF resolves even the far tail of a large vocabulary.</summary>
    internal double NextUniform() => (_random.NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>
    /// Hashes seed and index together: SplitMix64 streams from nearby raw seeds are shifted copies of each other, so
    /// seed + index would make sample 1 replay sample 0 one step later.
    /// </summary>
    private static ulong StreamSeed(ulong seed, int sampleIndex)
    {
        ulong mixedSeed = new DeterministicRandom(seed).NextUInt64();
        return new DeterministicRandom(mixedSeed ^ (0xD1B54A32D192ED03UL * (ulong)(sampleIndex + 1))).NextUInt64();
    }
}
