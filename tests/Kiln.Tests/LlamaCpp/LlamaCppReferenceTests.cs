using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;

namespace Kiln.Tests.LlamaCpp;

/// <summary>Tests of the reference side itself: llama.cpp through LLamaSharp, and the random GGUF generator.</summary>
public class LlamaCppReferenceTests
{
    /// <summary>vocab 512, hidden 64, 2 layers, 4 query heads sharing 2 KV heads.</summary>
    internal static readonly RandomLlamaOptions Small = new()
    {
        VocabSize = 512,
        Hidden = 64,
        Intermediate = 192,
        Layers = 2,
        Heads = 4,
        KvHeads = 2,
        ContextLength = 256,
    };

    [Fact]
    public void LlamaCpp_Stories260K_GreedyFromBosReadsAsEnglish_NeedsSharedModels()
    {
        using var llama = new LlamaCppReference(SharedData.RequireStoriesGguf());
        int[] tokens = llama.Greedy([1], 200);

        Assert.Equal(200, tokens.Length);
        string text = llama.Detokenize(tokens);
        Assert.Contains("Once upon a time", text, StringComparison.Ordinal);
        int plain = text.Count(c => char.IsLetter(c) || c == ' ');
        Assert.True(plain >= 0.8 * text.Length, $"only {plain} of {text.Length} characters are letters or spaces: {text}");
    }

    [Fact]
    public void LlamaCpp_Stories260K_AllPositionLogitsAgreeWithIncrementalGreedy_NeedsSharedModels()
    {
        using var llama = new LlamaCppReference(SharedData.RequireStoriesGguf());
        int[] greedy = llama.Greedy([1], 40);
        int[] prompt = [1, .. greedy];

        float[][] logits = llama.LogitsByPosition(prompt);

        // Teacher forcing the greedy continuation: the argmax at position i is the token generated next.
        Assert.Equal(greedy, logits.Take(40).Select(row => LlamaCppReference.ArgMax(row)));
        Assert.All(logits, row => Assert.Equal(512, row.Length));
    }

    [Theory]
    [InlineData(GgmlType.F32, false)]
    [InlineData(GgmlType.F32, true)]
    [InlineData(GgmlType.F16, false)]
    [InlineData(GgmlType.BF16, true)]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.Q8_0, true)]
    public void LlamaCpp_RandomLlamaGguf_LoadsWithFiniteLogitsThatDifferByPosition(GgmlType type, bool tied)
    {
        using var file = new TempGguf(Small with { WeightType = type, TiedEmbeddings = tied });
        using var llama = new LlamaCppReference(file.Path, contextSize: 64);
        int[] prompt = RandomPrompt(24, Small.VocabSize, seed: 7);

        float[][] logits = llama.LogitsByPosition(prompt);

        Assert.Equal(Small.VocabSize, llama.VocabSize);
        Assert.All(logits, row => Assert.All(row, v => Assert.True(float.IsFinite(v))));
        for (int i = 0; i < logits.Length; i++)
        {
            // Of order 1, as the generator's scaling intends.
            double rms = Math.Sqrt(logits[i].Average(v => (double)v * v));
            Assert.InRange(rms, 0.05, 20);
            for (int j = 0; j < i; j++)
            {
                double difference = logits[i].Zip(logits[j]).Max(p => Math.Abs(p.First - p.Second));
                Assert.True(difference > 1e-3, $"logits at positions {j} and {i} are the same");
            }
        }
    }

    [Fact]
    public void LlamaCpp_RandomLlamaGguf_RopeFreqsTensorIsUsedByLlamaCpp()
    {
        float[] factors = RandomLlamaGguf.Llama3RopeFactors(Small.HeadDim, 10000f, factor: 8f, originalContext: 16);
        Assert.Contains(factors, f => f != 1f);
        using var plain = new TempGguf(Small);
        using var scaled = new TempGguf(Small with { RopeFreqFactors = factors });
        int[] prompt = RandomPrompt(12, Small.VocabSize, seed: 3);

        float[][] a, b;
        using (var llama = new LlamaCppReference(plain.Path, contextSize: 32))
        {
            a = llama.LogitsByPosition(prompt);
        }

        using (var llama = new LlamaCppReference(scaled.Path, contextSize: 32))
        {
            b = llama.LogitsByPosition(prompt);
        }

        // Position 0 rotates by angle 0 whatever the factors; later positions must change.
        Assert.Equal(a[0], b[0]);
        Assert.True(a[^1].Zip(b[^1]).Max(p => Math.Abs(p.First - p.Second)) > 1e-4);
    }

    [Fact]
    public void LlamaCpp_RandomLlamaGguf_SyntheticVocabularyTokenizesAndRoundTrips()
    {
        using var file = new TempGguf(Small);
        using var llama = new LlamaCppReference(file.Path, contextSize: 32);
        const string Text = "Once upon a time the little girl, Lily, saw 3 dogs!";

        int[] tokens = llama.Tokenize(Text, addBos: true);

        Assert.Equal(SyntheticVocabulary.Bos, tokens[0]);
        Assert.True(tokens.Length < Text.Length, $"{tokens.Length} tokens: merges did not happen");
        Assert.Equal(Text, llama.Detokenize(tokens).TrimStart());
        Assert.Equal(SyntheticVocabulary.Bos, llama.Bos);
        Assert.Equal(SyntheticVocabulary.Eos, llama.Eos);
    }

    [Fact]
    public void RandomLlamaGguf_ReadBackByGgufFile_HasExpectedMetadataAndTensorShapes()
    {
        float[] factors = RandomLlamaGguf.Llama3RopeFactors(Small.HeadDim, 10000f);
        using var file = new TempGguf(Small with { RopeFreqFactors = factors, WeightType = GgmlType.F16 });
        using var gguf = GgufFile.Open(file.Path);

        Assert.Equal(3u, gguf.Version);
        Assert.Equal("llama", gguf.Metadata["general.architecture"]);
        Assert.Equal(1L, gguf.Metadata["general.file_type"]);
        Assert.Equal(512L, gguf.Metadata["llama.vocab_size"]);
        Assert.Equal(256L, gguf.Metadata["llama.context_length"]);
        Assert.Equal(64L, gguf.Metadata["llama.embedding_length"]);
        Assert.Equal(2L, gguf.Metadata["llama.block_count"]);
        Assert.Equal(192L, gguf.Metadata["llama.feed_forward_length"]);
        Assert.Equal(4L, gguf.Metadata["llama.attention.head_count"]);
        Assert.Equal(2L, gguf.Metadata["llama.attention.head_count_kv"]);
        Assert.Equal(16L, gguf.Metadata["llama.rope.dimension_count"]);
        Assert.Equal(1e-5, (double)gguf.Metadata["llama.attention.layer_norm_rms_epsilon"], 1e-9);
        Assert.Equal(10000.0, (double)gguf.Metadata["llama.rope.freq_base"]);
        Assert.Equal("llama", gguf.Metadata["tokenizer.ggml.model"]);
        Assert.Equal(1L, gguf.Metadata["tokenizer.ggml.bos_token_id"]);
        Assert.Equal(2L, gguf.Metadata["tokenizer.ggml.eos_token_id"]);
        Assert.Equal(true, gguf.Metadata["tokenizer.ggml.add_bos_token"]);
        var tokens = (string[])gguf.Metadata["tokenizer.ggml.tokens"];
        Assert.Equal(512, tokens.Length);
        Assert.Equal(512, tokens.Distinct().Count());
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.Equal(512, ((float[])gguf.Metadata["tokenizer.ggml.scores"]).Length);
        var types = (long[])gguf.Metadata["tokenizer.ggml.token_type"];
        Assert.Equal(6L, types[3]);
        Assert.Equal(1L, types[511]);

        Assert.Equal(2 + (2 * 9) + 2, gguf.Tensors.Count); // embedding, layers, output norm, output, rope_freqs
        AssertTensor(gguf, "token_embd.weight", GgmlType.F16, 64, 512);
        AssertTensor(gguf, "blk.1.attn_norm.weight", GgmlType.F32, 64);
        AssertTensor(gguf, "blk.1.attn_q.weight", GgmlType.F16, 64, 64);
        AssertTensor(gguf, "blk.1.attn_k.weight", GgmlType.F16, 64, 32);
        AssertTensor(gguf, "blk.1.attn_v.weight", GgmlType.F16, 64, 32);
        AssertTensor(gguf, "blk.1.attn_output.weight", GgmlType.F16, 64, 64);
        AssertTensor(gguf, "blk.1.ffn_norm.weight", GgmlType.F32, 64);
        AssertTensor(gguf, "blk.1.ffn_gate.weight", GgmlType.F16, 64, 192);
        AssertTensor(gguf, "blk.1.ffn_up.weight", GgmlType.F16, 64, 192);
        AssertTensor(gguf, "blk.1.ffn_down.weight", GgmlType.F16, 192, 64);
        AssertTensor(gguf, "output_norm.weight", GgmlType.F32, 64);
        AssertTensor(gguf, "output.weight", GgmlType.F16, 64, 512);
        AssertTensor(gguf, "rope_freqs.weight", GgmlType.F32, 8);
        Assert.Equal(factors, gguf.Vector("rope_freqs.weight", 8));
        Assert.All(gguf.Vector("output_norm.weight", 64), v => Assert.InRange(v, 0.9f, 1.1f));
    }

    [Fact]
    public void RandomLlamaGguf_TiedHasNoOutputTensor_AndSameSeedGivesSameBytes()
    {
        using var a = new TempGguf(Small with { TiedEmbeddings = true });
        using var b = new TempGguf(Small with { TiedEmbeddings = true });
        using var c = new TempGguf(Small with { TiedEmbeddings = true, Seed = 43 });

        using (var gguf = GgufFile.Open(a.Path))
        {
            Assert.False(gguf.Tensors.ContainsKey("output.weight"));
        }

        Assert.Equal(File.ReadAllBytes(a.Path), File.ReadAllBytes(b.Path));
        Assert.NotEqual(File.ReadAllBytes(a.Path), File.ReadAllBytes(c.Path));
        Assert.Equal(Small.ParameterCount - (512 * 64), (Small with { TiedEmbeddings = true }).ParameterCount);
    }

    /// <summary>BOS, then uniformly random ids above the byte tokens.</summary>
    internal static int[] RandomPrompt(int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return [SyntheticVocabulary.Bos, .. Enumerable.Range(1, length - 1).Select(_ => random.Next(SyntheticVocabulary.FirstByteToken + 256, vocab))];
    }

    private static void AssertTensor(GgufFile gguf, string name, GgmlType type, params long[] dims)
    {
        var tensor = gguf.Tensors[name];
        Assert.Equal(dims, tensor.Dimensions);
        Assert.Equal((uint)type, tensor.RawType);
    }
}
