using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;

namespace Kiln.Tests.Numerics;

/// <summary>One Forward call over many sequences in different phases must equal running each sequence on its own.</summary>
public class BatchingTests(ITestOutputHelper output)
{
    /// <summary>
    /// Every kernel computes a token's row from that token's inputs and its own sequence's cache alone, so batching
    /// should not change a single bit; 1e-5 allows a kernel to reorder a sum by batch size without hiding a mix-up
    /// between sequences, which moves logits by O(1).
    /// </summary>
    private const double Tolerance = 1e-5;

    /// <summary>A sequence of the mixed step: its KV slot, all its tokens, and how many of them the cache holds before the step.</summary>
    private sealed record Sequence(int Slot, int[] Tokens, int CachedBefore);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MixedStep_PrefillContinuationAndDecodes_EqualsEachSequenceAlone(bool allPositions)
    {
        var model = new TinyLlama(new TinyLlamaSpec { Seed = 31, AttentionBias = true });
        using var directory = new TempDirectory();
        using var loaded = ModelLoader.Load(TinyCheckpoints.WriteHuggingFace(directory.Path, model).Path);
        int vocab = model.Spec.VocabSize;

        // Slots out of order, so that a mix-up of step order and cache slot shows.
        Sequence[] sequences =
        [
            new(Slot: 2, model.RandomTokens(7, seed: 1), CachedBefore: 0), // a whole prefill in this step
            new(Slot: 0, model.RandomTokens(11, seed: 2), CachedBefore: 5), // a continuation chunk of 6 tokens
            new(Slot: 3, model.RandomTokens(4, seed: 3), CachedBefore: 3), // a decode token at position 3
            new(Slot: 1, model.RandomTokens(10, seed: 4), CachedBefore: 9), // a decode token at position 9
        ];

        using var pool = new WorkerPool(Math.Max(2, Environment.ProcessorCount));
        using var runner = new CpuModelRunner(loaded, maxBatchTokens: 32, maxContext: 32, pool);
        var cache = new ContiguousKvCache(loaded.Config, sequences: 4, maxContext: 32);

        // Earlier steps fill the cache, all cached sequences in one call.
        var before = sequences.Where(s => s.CachedBefore > 0).ToArray();
        runner.Forward(
            new ForwardBatch(
                [.. before.SelectMany(s => s.Tokens.Take(s.CachedBefore))],
                [.. before.SelectMany(s => Enumerable.Range(0, s.CachedBefore))],
                [.. before.Select(s => s.Slot)],
                [.. before.Select(s => s.CachedBefore)]),
            cache,
            new float[before.Length * vocab]);

        int stepTokens = sequences.Sum(s => s.Tokens.Length - s.CachedBefore);
        var batched = new float[(allPositions ? stepTokens : sequences.Length) * vocab];
        runner.Forward(
            new ForwardBatch(
                [.. sequences.SelectMany(s => s.Tokens.Skip(s.CachedBefore))],
                [.. sequences.SelectMany(s => Enumerable.Range(s.CachedBefore, s.Tokens.Length - s.CachedBefore))],
                [.. sequences.Select(s => s.Slot)],
                [.. sequences.Select(s => s.Tokens.Length - s.CachedBefore)]),
            cache,
            batched,
            allPositions);

        int row = 0;
        double worst = 0;
        foreach (var s in sequences)
        {
            float[] alone = AloneAllPositions(loaded, pool, s.Tokens);
            int first = allPositions ? s.CachedBefore : s.Tokens.Length - 1;
            for (int t = first; t < s.Tokens.Length; t++, row++)
            {
                double diff = Diff.MaxAbs(batched.AsSpan(row * vocab, vocab), alone.AsSpan(t * vocab, vocab));
                worst = Math.Max(worst, diff);
                Assert.True(diff < Tolerance, $"slot {s.Slot}, position {t}: batched logits differ from the sequence alone by {diff:E2}");
            }
        }

        Assert.Equal(batched.Length / vocab, row);
        output.WriteLine($"allPositions={allPositions}: max |batched - alone| = {worst:E2}");
    }

    /// <summary>The sequence alone: a fresh runner and one-slot cache, the whole sequence in one call, every position's logits.</summary>
    private static float[] AloneAllPositions(LoadedModel loaded, WorkerPool pool, int[] tokens)
    {
        using var runner = new CpuModelRunner(loaded, maxBatchTokens: tokens.Length, maxContext: 32, pool);
        var cache = new ContiguousKvCache(loaded.Config, sequences: 1, maxContext: 32);
        var logits = new float[tokens.Length * loaded.Config.VocabSize];
        runner.Forward(new ForwardBatch(tokens, [.. Enumerable.Range(0, tokens.Length)], [0], [tokens.Length]), cache, logits, allPositions: true);
        return logits;
    }
}
