using Kiln.Runtime.Generation;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Tests.Numerics;

public enum CheckpointFormat
{
    HuggingFace,
    HuggingFaceSharded,

    /// <summary>GGUF written in adjacent-pair order directly: the reference uses adjacent pairs too.</summary>
    Gguf,

    /// <summary>GGUF with Q/K permuted as llama.cpp's converter does: the reference uses the HF half-split order on the unpermuted weights.</summary>
    GgufConvertedFromHuggingFace,
}

public sealed record ForwardCase(TinyLlamaSpec Spec, CheckpointFormat Format, int Tokens = 24);

/// <summary>Kiln's float32 CPU forward pass against the float64 reference, on random checkpoints written to disk.</summary>
public class ReferenceLogitsTests(ITestOutputHelper output)
{
    /// <summary>
    /// Both sides use the same stored weights, so the only difference is float32 arithmetic in Kiln: dot products of
    /// at most 128 terms of O(1) values (relative error ~1e-6), a few layers deep, on logits of magnitude ~1-3.
    /// That predicts ~1e-6 (measured: see the test output); 1e-4 leaves a wide margin while a wrong RoPE pairing,
    /// frequency, bias or norm weight moves logits by 1e-2 or more (see <see cref="Reference_IsSensitiveToRopeLayoutScalingAndBiases"/>).
    /// </summary>
    private const double Tolerance = 1e-4;

    private static readonly Llama3Scaling Llama3 = new(Factor: 8, LowFrequencyFactor: 1, HighFrequencyFactor: 4, OriginalMaxPositions: 64);

    public static readonly IReadOnlyDictionary<string, ForwardCase> Cases = new Dictionary<string, ForwardCase>
    {
        ["hf-llama-gqa-f32-untied"] = new(new TinyLlamaSpec(), CheckpointFormat.HuggingFace),
        ["hf-llama-mha-bf16-tied-rope-parameters"] = new(new TinyLlamaSpec { KvHeads = 4, Storage = StoredType.BF16, Tied = true, RopeStyle = RopeConfigStyle.RopeParametersBlock, RopeTheta = 50000, Seed = 2 }, CheckpointFormat.HuggingFace),
        ["hf-qwen2-biases-f16-tied"] = new(new TinyLlamaSpec { Architecture = "Qwen2ForCausalLM", Storage = StoredType.F16, Tied = true, RopeTheta = 1e6, RmsNormEps = 1e-6, Seed = 3 }, CheckpointFormat.HuggingFace),
        ["hf-qwen3-head-dim-16-qk-norm-untied"] = new(new TinyLlamaSpec { Architecture = "Qwen3ForCausalLM", ExplicitHeadDim = 16, RopeTheta = 1e6, RmsNormEps = 1e-6, Seed = 13 }, CheckpointFormat.HuggingFace),
        ["hf-qwen3-qk-norm-bf16-tied"] = new(new TinyLlamaSpec { Architecture = "Qwen3ForCausalLM", Storage = StoredType.BF16, Tied = true, KvHeads = 1, Seed = 14 }, CheckpointFormat.HuggingFace),
        ["hf-mistral-head-dim-16-mqa"] = new(new TinyLlamaSpec { Architecture = "MistralForCausalLM", ExplicitHeadDim = 16, KvHeads = 1, Seed = 4 }, CheckpointFormat.HuggingFace),
        ["hf-llama3-scaling-rope-scaling-bf16"] = new(new TinyLlamaSpec { Hidden = 64, Llama3 = Llama3, Storage = StoredType.BF16, Seed = 5 }, CheckpointFormat.HuggingFace, Tokens: 48),
        ["hf-llama3-scaling-rope-parameters-f32"] = new(new TinyLlamaSpec { Hidden = 64, Llama3 = Llama3, RopeTheta = 500000, RopeStyle = RopeConfigStyle.RopeParametersBlock, Seed = 6 }, CheckpointFormat.HuggingFace, Tokens: 48),
        ["hf-llama-sharded-bf16-attention-bias"] = new(new TinyLlamaSpec { Layers = 3, AttentionBias = true, Storage = StoredType.BF16, Seed = 7 }, CheckpointFormat.HuggingFaceSharded),
        ["gguf-f32-gqa-untied"] = new(new TinyLlamaSpec { Seed = 8 }, CheckpointFormat.Gguf),
        ["gguf-q8_0-gqa-untied"] = new(new TinyLlamaSpec { Hidden = 64, Intermediate = 96, Storage = StoredType.Q8_0, Seed = 9 }, CheckpointFormat.Gguf),
        ["gguf-f16-tied-biases"] = new(new TinyLlamaSpec { AttentionBias = true, Tied = true, Storage = StoredType.F16, Seed = 10 }, CheckpointFormat.Gguf),
        ["gguf-converted-bf16-llama3-head-dim-16"] = new(new TinyLlamaSpec { ExplicitHeadDim = 16, Llama3 = Llama3, Storage = StoredType.BF16, Seed = 11 }, CheckpointFormat.GgufConvertedFromHuggingFace, Tokens: 48),
        ["gguf-converted-q8_0-mha-tied"] = new(new TinyLlamaSpec { Hidden = 64, Intermediate = 128, KvHeads = 4, Tied = true, Storage = StoredType.Q8_0, Seed = 12 }, CheckpointFormat.GgufConvertedFromHuggingFace),
    };

    public static TheoryData<string> CaseNames => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void AllPositionLogits_MatchFloat64Reference(string caseName)
    {
        var testCase = Cases[caseName];
        var model = new TinyLlama(testCase.Spec);
        using var directory = new TempDirectory();
        var written = Write(directory, model, testCase.Format);
        int[] tokens = model.RandomTokens(testCase.Tokens, seed: testCase.Spec.Seed + 100);

        using var loaded = ModelLoader.Load(written.Path);
        AssertConfigMatchesSpec(loaded.Config, testCase);
        AssertWeightsAsStored(loaded.Weights, written.InFile, testCase.Spec.Tied);
        float[] kiln;
        // A prefill chunk of 16 splits the prompt over several calls: positions after the first chunk read the cache.
        using (var generator = new Generator(loaded, maxContext: 64, prefillChunk: 16))
        {
            kiln = generator.AllLogits(tokens);
        }

        bool gguf = testCase.Format is CheckpointFormat.Gguf or CheckpointFormat.GgufConvertedFromHuggingFace;
        var config = ReferenceConfig.From(testCase.Spec, adjacentRopePairs: testCase.Format == CheckpointFormat.Gguf, float32Hyperparameters: gguf);
        double[][] reference = new ReferenceLlama(config, written.Stored).AllLogits(tokens);

        double diff = Diff.MaxAbs(kiln, reference);
        double largest = reference.Max(row => row.Max(Math.Abs));
        output.WriteLine($"{caseName}: max |kiln - float64 reference| = {diff:E2} over {tokens.Length} positions (largest |logit| {largest:F2})");
        Assert.True(diff < Tolerance, $"{caseName}: max abs logit difference {diff:E3} exceeds {Tolerance:E0}");
    }

    /// <summary>The comparison can fail: each plausible mistake moves the reference's logits by far more than the tolerance.</summary>
    [Fact]
    public void Reference_IsSensitiveToRopeLayoutScalingAndBiases()
    {
        var spec = Cases["hf-llama3-scaling-rope-scaling-bf16"].Spec with { AttentionBias = true };
        var model = new TinyLlama(spec);
        var weights = model.Tensors.ToDictionary(t => t.Name, t => t.Values);
        int[] tokens = model.RandomTokens(32, seed: 5);
        var baseline = ReferenceConfig.From(spec, adjacentRopePairs: false);
        double[][] expected = new ReferenceLlama(baseline, weights).AllLogits(tokens);

        foreach (var (what, variant) in new[]
        {
            ("adjacent RoPE pairs", baseline with { AdjacentRopePairs = true }),
            ("no llama3 scaling", baseline with { Llama3 = null }),
            ("no attention biases", baseline with { AttentionBias = false }),
            ("RoPE base 10% off", baseline with { RopeTheta = baseline.RopeTheta * 1.1 }),
        })
        {
            double diff = Diff.MaxAbs(expected, new ReferenceLlama(variant, weights).AllLogits(tokens));
            output.WriteLine($"{what}: max logit change {diff:E2}");
            Assert.True(diff > 100 * Tolerance, $"{what} changes the logits by only {diff:E2}");
        }
    }

    /// <summary>Qwen3's per-head norms matter to the reference: without them (or with the key norm on the queries) it moves.</summary>
    [Fact]
    public void Reference_IsSensitiveToQwen3HeadNorms()
    {
        var spec = Cases["hf-qwen3-head-dim-16-qk-norm-untied"].Spec;
        var model = new TinyLlama(spec);
        var weights = model.Tensors.ToDictionary(t => t.Name, t => t.Values);
        int[] tokens = model.RandomTokens(24, seed: 5);
        var config = ReferenceConfig.From(spec, adjacentRopePairs: false);
        Assert.True(config.QkNorm);
        double[][] expected = new ReferenceLlama(config, weights).AllLogits(tokens);

        var swapped = new Dictionary<string, float[]>(weights);
        for (int i = 0; i < spec.Layers; i++)
        {
            (swapped[$"L{i}.q_norm"], swapped[$"L{i}.k_norm"]) = (weights[$"L{i}.k_norm"], weights[$"L{i}.q_norm"]);
        }

        foreach (var (what, logits) in new[]
        {
            ("no head norms", new ReferenceLlama(config with { QkNorm = false }, weights).AllLogits(tokens)),
            ("query and key norms swapped", new ReferenceLlama(config, swapped).AllLogits(tokens)),
        })
        {
            double diff = Diff.MaxAbs(expected, logits);
            output.WriteLine($"{what}: max logit change {diff:E2}");
            Assert.True(diff > 100 * Tolerance, $"{what} changes the logits by only {diff:E2}");
        }
    }

    /// <summary>Checks the converter permutation and both RoPE layouts of the reference against each other.</summary>
    [Fact]
    public void Reference_HalfSplitRopeEqualsAdjacentRopeOnConverterPermutedWeights()
    {
        var spec = new TinyLlamaSpec { ExplicitHeadDim = 16, AttentionBias = true, Llama3 = Llama3, Seed = 21 };
        var model = new TinyLlama(spec);
        var weights = model.Tensors.ToDictionary(t => t.Name, t => t.Values);
        var permuted = model.Tensors.ToDictionary(
            t => t.Name,
            t => t.Name.Split('.') is [_, "q" or "q_bias" or "k" or "k_bias"]
                ? TinyLlama.PermuteForAdjacentRope(t.Values, t.Name.Contains(".q", StringComparison.Ordinal) ? spec.Heads : spec.KvHeads, spec.HeadDim, t.IsVector ? 1 : t.Columns)
                : t.Values);
        int[] tokens = model.RandomTokens(20, seed: 3);

        double[][] halfSplit = new ReferenceLlama(ReferenceConfig.From(spec, adjacentRopePairs: false), weights).AllLogits(tokens);
        double[][] adjacent = new ReferenceLlama(ReferenceConfig.From(spec, adjacentRopePairs: true), permuted).AllLogits(tokens);

        Assert.True(Diff.MaxAbs(halfSplit, adjacent) < 1e-12);
    }

    /// <summary>Kiln's RoPE frequencies, from config.json's llama3 block and from GGUF's rope_freqs divisors, against transformers' formula.</summary>
    [Fact]
    public void RopeFrequencies_Llama3_MatchTransformersFromConfigAndFromGgufRopeFreqs()
    {
        var spec = new TinyLlamaSpec { Hidden = 128, Heads = 2, Llama3 = Llama3 };
        double[] expected = ReferenceLlama.InverseFrequencies(ReferenceConfig.From(spec, adjacentRopePairs: false));
        var config = new ModelConfig
        {
            Architecture = "llama",
            VocabSize = 8,
            HiddenSize = spec.Hidden,
            IntermediateSize = 8,
            LayerCount = 1,
            HeadCount = spec.Heads,
            KvHeadCount = spec.Heads,
            HeadDim = spec.HeadDim,
            MaxPositions = 128,
            RopeTheta = spec.RopeTheta,
        };

        double[] fromConfig = Kiln.Runtime.Cpu.RopeTable.Compute(config with { RopeScaling = new Llama3RopeScaling(8, 1, 4, 64) }, null);
        double[] fromRopeFreqs = Kiln.Runtime.Cpu.RopeTable.Compute(config, TinyCheckpoints.ConverterRopeFactors(spec.RopeTheta, spec.HeadDim, Llama3));

        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], fromConfig[i], expected[i] * 1e-12);
            // rope_freqs is float32: relative rounding of 6e-8.
            Assert.Equal(expected[i], fromRopeFreqs[i], expected[i] * 1e-7);
        }

        // The test spans all three bands: kept, interpolated and slowed by the full factor.
        double[] unscaled = ReferenceLlama.InverseFrequencies(ReferenceConfig.From(spec with { Llama3 = null }, adjacentRopePairs: false));
        Assert.Contains(expected.Zip(unscaled), p => p.First == p.Second);
        Assert.Contains(expected.Zip(unscaled), p => Math.Abs((p.First * 8) - p.Second) < 1e-15);
        Assert.Contains(expected.Zip(unscaled), p => p.First < p.Second && p.First * 8 > p.Second * 1.0001);
    }

    public static WrittenCheckpoint Write(TempDirectory directory, TinyLlama model, CheckpointFormat format) => format switch
    {
        CheckpointFormat.HuggingFace => TinyCheckpoints.WriteHuggingFace(directory.Path, model),
        CheckpointFormat.HuggingFaceSharded => TinyCheckpoints.WriteHuggingFace(directory.Path, model, sharded: true),
        CheckpointFormat.Gguf => TinyCheckpoints.WriteGguf(directory.File("model.gguf"), model),
        CheckpointFormat.GgufConvertedFromHuggingFace => TinyCheckpoints.WriteGguf(directory.File("model.gguf"), model, convertedFromHuggingFace: true),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    private static void AssertConfigMatchesSpec(ModelConfig config, ForwardCase testCase)
    {
        var spec = testCase.Spec;
        bool gguf = testCase.Format is CheckpointFormat.Gguf or CheckpointFormat.GgufConvertedFromHuggingFace;
        Assert.Equal(
            (spec.VocabSize, spec.Hidden, spec.Intermediate, spec.Layers, spec.Heads, spec.KvHeads, spec.HeadDim, spec.HasBiases, spec.Tied),
            (config.VocabSize, config.HiddenSize, config.IntermediateSize, config.LayerCount, config.HeadCount, config.KvHeadCount, config.HeadDim, config.AttentionBias, config.TiedEmbeddings));
        Assert.Equal(spec.HasQkNorm, config.QkNorm);
        Assert.Equal(gguf ? RopeLayout.AdjacentPairs : RopeLayout.HalfSplit, config.RopeLayout);
        Assert.Equal(gguf ? (float)spec.RopeTheta : spec.RopeTheta, config.RopeTheta);
        if (!gguf)
        {
            // GGUF carries llama3 scaling as the rope_freqs tensor instead (checked by the logits).
            var s = spec.Llama3;
            Assert.Equal(s is null ? null : new Llama3RopeScaling(s.Factor, s.LowFrequencyFactor, s.HighFrequencyFactor, s.OriginalMaxPositions), config.RopeScaling);
        }
    }

    /// <summary>Every weight Kiln loaded equals, bit for bit once widened, what the file stores: a loader bug shows here first.</summary>
    private static void AssertWeightsAsStored(ModelWeights weights, IReadOnlyDictionary<string, float[]> stored, bool tied)
    {
        static float[] All(WeightMatrix m)
        {
            var values = new float[m.Rows * m.Columns];
            for (int r = 0; r < m.Rows; r++)
            {
                m.ReadRow(r, values.AsSpan(r * m.Columns, m.Columns));
            }

            return values;
        }

        void Same(string name, float[]? actual) => Assert.True(actual is not null && stored[name].AsSpan().SequenceEqual(actual), $"loaded weight '{name}' differs from the stored values");

        Same("embed", All(weights.Embedding));
        Same(tied ? "embed" : "lm_head", All(weights.Classifier));
        Same("norm", weights.FinalNorm);
        for (int i = 0; i < weights.Layers.Count; i++)
        {
            var l = weights.Layers[i];
            Same($"L{i}.attn_norm", l.AttentionNorm);
            Same($"L{i}.ffn_norm", l.FeedForwardNorm);
            foreach (var (part, m) in new[] { ("q", l.Query), ("k", l.Key), ("v", l.Value), ("o", l.Output), ("gate", l.Gate), ("up", l.Up), ("down", l.Down) })
            {
                Same($"L{i}.{part}", All(m));
            }

            Assert.Equal(stored.ContainsKey($"L{i}.q_norm"), l.QueryNorm is not null);
            if (stored.ContainsKey($"L{i}.q_norm"))
            {
                Same($"L{i}.q_norm", l.QueryNorm);
                Same($"L{i}.k_norm", l.KeyNorm);
            }

            if (stored.ContainsKey($"L{i}.q_bias"))
            {
                Same($"L{i}.q_bias", l.QueryBias);
                Same($"L{i}.k_bias", l.KeyBias);
                Same($"L{i}.v_bias", l.ValueBias);
            }
        }
    }
}
