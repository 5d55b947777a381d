using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Engine;

/// <summary>
/// The engine's device-draw path (<see cref="IModelRunner.TryForwardSampled"/>, which the CUDA runner answers with
/// its argmax and top-k/top-p kernels) driven on the CPU by a runner that draws from its own logits: greedy draws
/// must give exactly the tokens of the engine that samples from logits; sampled requests must reach the runner with
/// their parameters and a seed per step, and repeat under a fixed seed; requests the device cannot serve (penalties,
/// log-probabilities) must stay on the logits path.
/// </summary>
public sealed class DeviceSamplingTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    [Fact]
    public async Task GreedyRequests_TakeTheIdsPath_AndMatchTheLogitsPath()
    {
        var prompts = Enumerable.Range(0, 5).Select(i => EngineTestModel.Prompt(40 + i, 7 + (11 * i))).ToArray();
        var expected = await RunAll(null, prompts, EngineTestModel.Request(prompts[0], 12));
        var drawing = NewRunner();
        var actual = await RunAll(drawing, prompts, EngineTestModel.Request(prompts[0], 12));

        Assert.Equal(expected, actual);
        Assert.True(drawing.DrawSteps > 0, "greedy steps must use the ids path");
        Assert.Equal(0, drawing.LogitSteps);
        Assert.All(drawing.Draws, d => Assert.True(d.IsGreedy));
    }

    [Fact]
    public async Task SampledRequests_AreDrawnOnTheDevice_WithTheirParametersAndASeedPerStep()
    {
        var prompts = new[] { EngineTestModel.Prompt(50, 9) };
        var request = EngineTestModel.Request(prompts[0], 10, temperature: 0.8f, seed: 3);
        request = request with { Sampling = request.Sampling with { TopK = 7, TopP = 0.9f } };
        var first = NewRunner();
        var tokens = await RunAll(first, prompts, request);
        var again = await RunAll(NewRunner(), prompts, request);
        var reseeded = await RunAll(NewRunner(), prompts, request with { Sampling = request.Sampling with { Seed = 4 } });

        Assert.Equal(0, first.LogitSteps);
        Assert.Equal(10, first.Draws.Count); // the prompt fits one step: every step draws a token
        Assert.All(first.Draws, d => Assert.Equal((0.8f, 7, 0.9f), (d.Temperature, d.TopK, d.TopP)));
        // Each step draws with a seed of its own, so the draws are not one repeated choice.
        Assert.Equal(first.Draws.Count, first.Draws.Select(d => d.Seed).Distinct().Count());
        Assert.Equal(tokens, again); // a seed repeats its tokens
        Assert.NotEqual(tokens, reseeded);
        Assert.All(tokens.SelectMany(t => t), id => Assert.Contains(id, first.Emitted));
    }

    [Theory]
    [InlineData("repetition")]
    [InlineData("logprobs")]
    public async Task RequestsTheDeviceCannotServe_StayOnTheLogitsPath(string feature)
    {
        var prompts = new[] { EngineTestModel.Prompt(52, 9) };
        var request = EngineTestModel.Request(prompts[0], 6, temperature: 0.7f, seed: 5);
        request = request with
        {
            Sampling = feature == "repetition" ? request.Sampling with { RepetitionPenalty = 1.3f } : request.Sampling with { LogProbs = 2 },
        };
        var drawing = NewRunner();
        var expected = await RunAll(null, prompts, request);
        var actual = await RunAll(drawing, prompts, request);

        Assert.Equal(expected, actual); // the host's sampler, same seed
        Assert.Equal(0, drawing.DrawSteps);
        Assert.True(drawing.LogitSteps > 0);
    }

    private DrawingRunner NewRunner() => new(new CpuModelRunner(fixture.Model, maxBatchTokens: 64, threads: 2));

    private async Task<List<int>[]> RunAll(IModelRunner? runner, int[][] prompts, GenerationRequest template)
    {
        var options = new EngineOptions { BlockSize = 4, KvCacheBytes = 4 << 20, MaxBatchedTokens = 64, MaxSequences = 8, Threads = 2 };
        using var engine = new InferenceEngine(fixture.Model, runner, options);
        var runs = prompts.Select(p => EngineTestModel.RunAsync(engine, template with { PromptTokenIds = p }, TestContext.Current.CancellationToken));
        return [.. (await Task.WhenAll(runs)).Select(c => c.Tokens[0])];
    }

    /// <summary>
    /// The CPU runner plus an ids path that draws from its own logits, as the GPU does on the device: the argmax for a
    /// greedy row, else one of the row's top-k ids picked by its seed (enough to see seeds and parameters arrive).
    /// </summary>
    private sealed class DrawingRunner(CpuModelRunner inner) : IModelRunner
    {
        private float[] _logits = [];

        public int DrawSteps { get; private set; }

        public int LogitSteps { get; private set; }

        public List<DeviceSampling> Draws { get; } = [];

        public HashSet<int> Emitted { get; } = [];

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

        public bool TryForwardSampled(ForwardBatch batch, IPagedKvCache cache, ReadOnlySpan<DeviceSampling> sampling, Span<int> next)
        {
            DrawSteps++;
            int vocab = Config.VocabSize;
            if (_logits.Length < batch.SequenceCount * vocab)
            {
                _logits = new float[batch.SequenceCount * vocab];
            }

            ((IModelRunner)inner).Forward(batch, cache, _logits);
            for (int s = 0; s < batch.SequenceCount; s++)
            {
                var row = _logits.AsSpan(s * vocab, vocab);
                var draw = sampling[s];
                Draws.Add(draw);
                next[s] = draw.IsGreedy ? Sampler.ArgMax(row) : TopIds(row, Math.Max(1, draw.TopK))[(int)(draw.Seed % (ulong)Math.Max(1, draw.TopK))];
                Emitted.Add(next[s]);
            }

            return true;
        }

        private static int[] TopIds(ReadOnlySpan<float> row, int k)
        {
            var values = row.ToArray();
            return [.. Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).Take(k)];
        }

        public void Dispose() => inner.Dispose();
    }
}
