using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;

namespace Kiln.Tests.LlamaCpp;

/// <summary>
/// Kiln's CPU forward pass against llama.cpp on the same weights.
/// <para>
/// Tolerances. llama.cpp runs with a float32 KV cache and no flash attention, so on F32 weights both engines do float32
/// arithmetic and differ only in summation order: measured max |diff| about 1e-5 on stories260K (logit rms 9) and 6e-6 on
/// the random models (logit rms 1). The F32 bounds, 1e-3 absolute on stories260K and 1e-4 x rms(logits) on random models,
/// leave a 15-100x margin and are still far below any real mistake (a wrong RoPE pairing, norm, mask or head mapping
/// moves logits by 0.1 or more).
/// </para>
/// <para>
/// On F16, BF16 and Q8_0 files llama.cpp also rounds every matrix product's <i>activations</i> to the weight's vec_dot
/// type (f16: unit roundoff 2^-11; bf16: 2^-8; Q8_0: int8 per block of 32, step max|x|/127); Kiln keeps them in float32.
/// So Kiln's handling of those types is tested exactly by giving llama.cpp an F32 file that holds the very same weights
/// (<see cref="RandomLlamaOptions.RoundWeightsThrough"/>): bound 1e-4 x rms, as for F32. The same-file comparison then only
/// bounds llama.cpp's own activation rounding, which for independent relative errors u a product gives a relative logit
/// error of a small multiple of u: measured rms(diff)/rms(logits) 8e-4 (F16), 6.4e-3 (BF16), 2.0e-2 (Q8_0), with max |diff|
/// 5 to 6 times the rms. The bounds are 3x those rms figures, and 8x them for the max.
/// </para>
/// </summary>
public class KilnVsLlamaCppTests
{
    /// <summary>Bound on max |diff| / rms(logits) when both engines multiply the same float32 weights.</summary>
    private const double ExactBound = 1e-4;

    private const string Story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog, Max. " +
        "One day, Lily saw a big red ball under a tree. She wanted to play with it, so she ran to get it. Max ran too, " +
        "and they played all day until the sun went down.";

    [Fact]
    public void Kiln_Stories260K_LogitsAtEveryPositionOf64TokensWithin1e3OfLlamaCpp_NeedsSharedModels()
    {
        string path = SharedData.RequireStoriesGguf();
        using var llama = new LlamaCppReference(path);
        int[] prompt = llama.Tokenize(Story, addBos: true)[..64];
        using var kiln = new KilnForward(path);

        var comparison = LogitsComparison.Compare(kiln.Logits(prompt), llama.Logits(prompt), llama.VocabSize);

        Assert.True(comparison.MaxAbs <= 1e-3, comparison.Describe());
        Assert.Equal(64, comparison.ArgMaxAgreements);
    }

    [Fact]
    public void Kiln_Stories260K_IncrementalDecodeLogitsWithin1e3OfLlamaCpp_NeedsSharedModels()
    {
        string path = SharedData.RequireStoriesGguf();
        using var llama = new LlamaCppReference(path);
        int[] prompt = llama.Tokenize(Story, addBos: true)[..48];
        using var kiln = new KilnForward(path);

        var comparison = LogitsComparison.Compare(kiln.LogitsIncremental(prompt), llama.Logits(prompt), llama.VocabSize);

        Assert.True(comparison.MaxAbs <= 1e-3, comparison.Describe());
    }

    [Fact]
    public void Kiln_Stories260K_200GreedyTokensFromBosIdenticalToLlamaCpp_NeedsSharedModels()
    {
        string path = SharedData.RequireStoriesGguf();
        using var llama = new LlamaCppReference(path);
        using var kiln = new KilnForward(path);

        int[] expected = llama.Greedy([1], 200);
        int[] actual = kiln.Greedy([1], 200);

        int same = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(same == 200, $"first difference at generated token {same}: llama.cpp \"{llama.Detokenize(expected)}\" vs Kiln \"{llama.Detokenize(actual)}\"");
    }

    [Theory]
    [InlineData(GgmlType.F32, false, 2)]
    [InlineData(GgmlType.F32, true, 4)]
    [InlineData(GgmlType.F16, false, 4)]
    [InlineData(GgmlType.F16, true, 2)]
    [InlineData(GgmlType.BF16, false, 2)]
    [InlineData(GgmlType.Q8_0, false, 2)]
    [InlineData(GgmlType.Q8_0, true, 4)]
    public void Kiln_RandomLlama_LogitsAtEveryPositionMatchLlamaCppOnTheSameWeightsInF32(GgmlType type, bool tied, int kvHeads)
    {
        var options = LlamaCppReferenceTests.Small with { WeightType = type, TiedEmbeddings = tied, KvHeads = kvHeads, Seed = 100 + (ulong)type };
        var comparison = Compare(options, options with { WeightType = GgmlType.F32, RoundWeightsThrough = type });

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, $"{type}: {comparison.Describe()}");
        Assert.Equal(comparison.Positions, comparison.ArgMaxAgreements);
    }

    [Theory]
    [InlineData(GgmlType.F16, 2.5e-3)]
    [InlineData(GgmlType.BF16, 2e-2)]
    [InlineData(GgmlType.Q8_0, 6e-2)]
    public void Kiln_RandomLlama_SameFileLogitsWithinLlamaCppActivationRounding(GgmlType type, double rmsBound)
    {
        var options = LlamaCppReferenceTests.Small with { WeightType = type, Seed = 200 + (ulong)type };
        var comparison = Compare(options, options);

        Assert.True(comparison.RmsDiff <= rmsBound * comparison.ReferenceRms, $"{type}: {comparison.Describe()}");
        Assert.True(comparison.MaxAbs <= 8 * rmsBound * comparison.ReferenceRms, $"{type}: {comparison.Describe()}");
    }

    [Theory]
    [InlineData(GgmlType.F32, 2)]
    [InlineData(GgmlType.F16, 4)]
    [InlineData(GgmlType.Q8_0, 2)]
    public void Kiln_RandomQwen2_LogitsAtEveryPositionMatchLlamaCppOnTheSameWeightsInF32(GgmlType type, int kvHeads)
    {
        // GGUF architecture qwen2: Q/K/V biases and llama.cpp's NEOX (half-split) rotary layout, which Kiln must read
        // as such (a llama file's adjacent-pair layout on these weights would move every logit).
        var options = LlamaCppReferenceTests.Small with { Architecture = "qwen2", WeightType = type, KvHeads = kvHeads, Seed = 300 + (ulong)type };
        var comparison = Compare(options, options with { WeightType = GgmlType.F32, RoundWeightsThrough = type });

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, $"qwen2 {type}: {comparison.Describe()}");
        Assert.Equal(comparison.Positions, comparison.ArgMaxAgreements);
    }

    [Theory]
    [InlineData(GgmlType.F32, 2, null)]
    [InlineData(GgmlType.F16, 1, 32)]
    [InlineData(GgmlType.Q8_0, 2, 32)]
    public void Kiln_RandomQwen3_LogitsAtEveryPositionMatchLlamaCppOnTheSameWeightsInF32(GgmlType type, int kvHeads, int? headDim)
    {
        // GGUF architecture qwen3: per-head query and key norms before the half-split rotation, no biases, and a head
        // size stated in the file (here 32 with hidden 64 and 4 heads, as Qwen3 states 128 where hidden / heads is 64).
        var options = LlamaCppReferenceTests.Small with { Architecture = "qwen3", WeightType = type, KvHeads = kvHeads, ExplicitHeadDim = headDim, Seed = 400 + (ulong)type };
        var comparison = Compare(options, options with { WeightType = GgmlType.F32, RoundWeightsThrough = type });

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, $"qwen3 {type}: {comparison.Describe()}");
        Assert.Equal(comparison.Positions, comparison.ArgMaxAgreements);
    }

    [Fact]
    public void Kiln_RandomLlamaWithAStatedHeadSize_AsMistralWritesIt_MatchesLlamaCpp()
    {
        // Mistral Nemo and Small are llama files whose head size (attention.key_length, 128) is not hidden / heads.
        var options = LlamaCppReferenceTests.Small with { ExplicitHeadDim = 32, KvHeads = 1, Seed = 460 };
        var comparison = Compare(options);

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, comparison.Describe());
        Assert.Equal(comparison.Positions, comparison.ArgMaxAgreements);
    }

    [Fact]
    public void Kiln_RandomQwen3_200GreedyTokensIdenticalToLlamaCpp()
    {
        var options = LlamaCppReferenceTests.Small with { Architecture = "qwen3", ExplicitHeadDim = 32, Seed = 450 };
        using var file = new TempGguf(options);
        using var llama = new LlamaCppReference(file.Path, contextSize: 256);
        using var kiln = new KilnForward(file.Path, maxContext: 256);
        int[] prompt = LlamaCppReferenceTests.RandomPrompt(8, options.VocabSize, seed: 3);

        int[] expected = llama.Greedy(prompt, 200);
        int[] actual = kiln.Greedy(prompt, 200);

        int same = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(same == 200, $"first difference at generated token {same} of 200");
    }

    [Fact]
    public void Kiln_RandomLlama_RopeFreqFactorsMatchLlamaCpp()
    {
        float[] factors = RandomLlamaGguf.Llama3RopeFactors(16, 10000f, factor: 8f, originalContext: 16);
        var comparison = Compare(LlamaCppReferenceTests.Small with { RopeFreqFactors = factors, Seed = 7 });

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, comparison.Describe());
    }

    [Fact]
    public void Kiln_RandomLlama_WiderQ8ModelMatchesLlamaCppOnTheSameWeightsInF32()
    {
        // Rows of several Q8_0 blocks, 8 query heads over 2 KV heads, three layers, a longer prompt.
        var options = new RandomLlamaOptions
        {
            VocabSize = 1000,
            Hidden = 256,
            Intermediate = 640,
            Layers = 3,
            Heads = 8,
            KvHeads = 2,
            WeightType = GgmlType.Q8_0,
            Seed = 5,
        };
        var comparison = Compare(options, options with { WeightType = GgmlType.F32, RoundWeightsThrough = GgmlType.Q8_0 }, promptLength: 96);

        Assert.True(comparison.MaxAbs <= ExactBound * comparison.ReferenceRms, comparison.Describe());
        Assert.Equal(96, comparison.ArgMaxAgreements);
    }

    /// <summary>Kiln on a file written with <paramref name="kilnOptions"/>, llama.cpp on one written with <paramref name="llamaOptions"/> (the same by default).</summary>
    private static LogitsComparison Compare(RandomLlamaOptions kilnOptions, RandomLlamaOptions? llamaOptions = null, int promptLength = 40)
    {
        int[] prompt = LlamaCppReferenceTests.RandomPrompt(promptLength, kilnOptions.VocabSize, seed: 11);
        float[] expected;
        using (var file = new TempGguf(llamaOptions ?? kilnOptions))
        using (var llama = new LlamaCppReference(file.Path, contextSize: 128))
        {
            expected = llama.Logits(prompt);
        }

        float[] actual;
        using (var file = new TempGguf(kilnOptions))
        using (var kiln = new KilnForward(file.Path, maxContext: 128))
        {
            actual = kiln.Logits(prompt);
        }

        return LogitsComparison.Compare(actual, expected, kilnOptions.VocabSize);
    }
}
