using Kiln.Runtime.Engine;
using Kiln.Runtime.Generation;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Engine;

/// <summary>Tensor parallelism on CPU ranks: sharded weights and KV, all-reduce in shared memory, same numbers as one rank.</summary>
public sealed class TensorParallelTests
{
    [Theory]
    [InlineData(Runtime.Formats.Gguf.GgmlType.F32, 4)]
    [InlineData(Runtime.Formats.Gguf.GgmlType.F16, 4)]
    [InlineData(Runtime.Formats.Gguf.GgmlType.Q8_0, 4)]
    [InlineData(Runtime.Formats.Gguf.GgmlType.F32, 2)] // tp 4: each KV head replicated over 2 ranks
    [InlineData(Runtime.Formats.Gguf.GgmlType.Q8_0, 2)]
    [InlineData(Runtime.Formats.Gguf.GgmlType.F32, 1)] // tp 2 and 4: the one KV head on every rank
    [InlineData(Runtime.Formats.Gguf.GgmlType.Q4_K, 2)] // random K-quant blocks: shards of whole 256-value blocks
    [InlineData(Runtime.Formats.Gguf.GgmlType.F32, 2, "qwen3")] // per-head norms on every rank
    public void LogitsAtEveryPosition_AgreeForTp1Tp2Tp4(Runtime.Formats.Gguf.GgmlType type, int kvHeads, string architecture = "llama")
    {
        int hidden = type == Runtime.Formats.Gguf.GgmlType.Q4_K ? 1024 : 128; // row-parallel shards of 256 columns
        using var file = new TempGguf(new RandomLlamaOptions { VocabSize = 300, Hidden = hidden, Intermediate = hidden * 2, Layers = 2, Heads = 8, KvHeads = kvHeads, Seed = 11, WeightType = type, Architecture = architecture });
        using var model = ModelLoader.Load(file.Path);
        int[] prompt = EngineTestModel.Prompt(3, 40).Select(id => id % 300).ToArray();

        float[] Logits(int tp)
        {
            using var generator = new Generator(model, maxContext: 64, prefillChunk: 16, tensorParallelSize: tp, threads: 4);
            return generator.AllLogits(prompt);
        }

        var one = Logits(1);
        foreach (int tp in new[] { 2, 4 })
        {
            var sharded = Logits(tp);
            double worst = 0;
            for (int i = 0; i < one.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(one[i] - sharded[i]));
            }

            Assert.True(worst < 1e-4, $"tp {tp}: max |logit difference| {worst:E2} at {type}, {kvHeads} KV heads");
        }
    }

    [Fact]
    public async Task EngineWithTwoRanks_GeneratesWhatOneRankDoes()
    {
        using var fixture = new EngineTestModel();
        var requests = Enumerable.Range(0, 6).Select(i => EngineTestModel.Request(EngineTestModel.Prompt(i, 10 + i), maxTokens: 12)).ToArray();

        async Task<List<int>[]> Run(int tp)
        {
            using var engine = new InferenceEngine(fixture.Model, new EngineOptions { TensorParallelSize = tp, KvCacheBytes = 8 << 20, BlockSize = 8, Threads = 2 });
            Assert.Equal(tp, engine.GetStats().TensorParallelSize);
            var results = await Task.WhenAll(requests.Select(r => EngineTestModel.RunAsync(engine, r)));
            return [.. results.Select(r => r.Tokens[0])];
        }

        var single = await Run(1);
        var pair = await Run(2);
        var four = await Run(4); // the model has 2 KV heads: each is replicated over 2 of the 4 ranks
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(single[i], pair[i]);
            Assert.Equal(single[i], four[i]);
        }
    }

    [Fact]
    public void UnevenSplit_IsRejectedWithAClearMessage()
    {
        using var file = new TempGguf(new RandomLlamaOptions { VocabSize = 300, Hidden = 96, Intermediate = 192, Layers = 1, Heads = 6, KvHeads = 2, Seed = 1 });
        using var model = ModelLoader.Load(file.Path);
        var error = Assert.Throws<ArgumentException>(() => new Generator(model, maxContext: 32, tensorParallelSize: 4));
        Assert.Contains("divide evenly", error.Message, StringComparison.Ordinal);

        // 3 KV heads over 2 ranks: neither divides the other, so no rank's query heads would read one whole KV head.
        using var odd = new TempGguf(new RandomLlamaOptions { VocabSize = 300, Hidden = 96, Intermediate = 192, Layers = 1, Heads = 12, KvHeads = 3, Seed = 1 });
        using var oddModel = ModelLoader.Load(odd.Path);
        var kvError = Assert.Throws<ArgumentException>(() => new Generator(oddModel, maxContext: 32, tensorParallelSize: 2));
        Assert.Contains("KV heads (3)", kvError.Message, StringComparison.Ordinal);
    }
}
