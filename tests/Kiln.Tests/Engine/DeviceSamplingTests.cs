using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Engine;

/// <summary>
/// The engine's device-sampling path (<see cref="IModelRunner.TryForwardGreedy"/>, which the CUDA runner answers
/// with an argmax kernel) driven on the CPU: a runner that picks the argmax itself must give exactly the tokens of
/// the engine that samples from logits, and must only be asked when every sequence of the step is plain greedy.
/// </summary>
public sealed class DeviceSamplingTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    [Fact]
    public async Task GreedyRequests_TakeTheIdsPath_AndMatchTheLogitsPath()
    {
        var prompts = Enumerable.Range(0, 5).Select(i => EngineTestModel.Prompt(40 + i, 7 + (11 * i))).ToArray();
        var expected = await RunAll(null, prompts, temperature: 0);
        var counting = new ArgmaxRunner(new CpuModelRunner(fixture.Model, maxBatchTokens: 64, threads: 2));
        var actual = await RunAll(counting, prompts, temperature: 0);

        Assert.Equal(expected, actual);
        Assert.True(counting.GreedySteps > 0, "greedy steps must use the ids path");
        Assert.Equal(0, counting.LogitSteps);
    }

    [Fact]
    public async Task ASampledRequest_KeepsItsStepsOnTheLogitsPath()
    {
        var prompts = new[] { EngineTestModel.Prompt(50, 9) };
        var counting = new ArgmaxRunner(new CpuModelRunner(fixture.Model, maxBatchTokens: 64, threads: 2));
        var expected = await RunAll(null, prompts, temperature: 0.8f);
        var actual = await RunAll(counting, prompts, temperature: 0.8f);

        Assert.Equal(expected, actual); // same seed, same sampler on the host
        Assert.Equal(0, counting.GreedySteps);
        Assert.True(counting.LogitSteps > 0);
    }

    private async Task<List<int>[]> RunAll(IModelRunner? runner, int[][] prompts, float temperature)
    {
        var options = new EngineOptions { BlockSize = 4, KvCacheBytes = 4 << 20, MaxBatchedTokens = 64, MaxSequences = 8, Threads = 2 };
        using var engine = new InferenceEngine(fixture.Model, runner, options);
        var runs = prompts.Select(p => EngineTestModel.RunAsync(engine, EngineTestModel.Request(p, maxTokens: 12, temperature, seed: 3), TestContext.Current.CancellationToken));
        return [.. (await Task.WhenAll(runs)).Select(c => c.Tokens[0])];
    }

    /// <summary>The CPU runner, plus an ids path that takes the argmax of its own logits (as the GPU does on the device).</summary>
    private sealed class ArgmaxRunner(CpuModelRunner inner) : IModelRunner
    {
        private float[] _logits = [];

        public int GreedySteps { get; private set; }

        public int LogitSteps { get; private set; }

        public ModelConfig Config => inner.Config;

        public int MaxBatchTokens => inner.MaxBatchTokens;

        public int TensorParallelSize => 1;

        public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
            inner.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence);

        public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
        {
            LogitSteps++;
            ((IModelRunner)inner).Forward(batch, cache, logits, allPositions);
        }

        public bool TryForwardGreedy(ForwardBatch batch, IPagedKvCache cache, Span<int> next)
        {
            GreedySteps++;
            int vocab = Config.VocabSize;
            if (_logits.Length < batch.SequenceCount * vocab)
            {
                _logits = new float[batch.SequenceCount * vocab];
            }

            ((IModelRunner)inner).Forward(batch, cache, _logits);
            for (int s = 0; s < batch.SequenceCount; s++)
            {
                next[s] = Sampler.ArgMax(_logits.AsSpan(s * vocab, vocab));
            }

            return true;
        }

        public void Dispose() => inner.Dispose();
    }
}
