using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;

namespace Kiln.Tests.Engine;

/// <summary>Continuous batching, chunked prefill, preemption and cancellation, observed through the public engine API.</summary>
public sealed class SchedulingTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    [Fact]
    public async Task ConcurrentRequests_OverSmallPool_AllCompleteAsTheyWouldAlone()
    {
        var requests = Enumerable.Range(0, 200)
            .Select(i => EngineTestModel.Request(EngineTestModel.Prompt(i, 3 + (i % 17)), maxTokens: 4 + (i % 9), temperature: i % 2 == 0 ? 0 : 0.9f, seed: (ulong)i))
            .ToArray();

        // Alone: one at a time on an engine with room to spare.
        var alone = new List<int>[requests.Length];
        using (var roomy = fixture.CreateEngine(blocks: 512, prefixCaching: false))
        {
            for (int i = 0; i < requests.Length; i++)
            {
                alone[i] = (await EngineTestModel.RunAsync(roomy, requests[i])).Tokens[0];
            }
        }

        // Together: all at once over a pool that holds only a few of them, with a small step budget.
        using var engine = fixture.CreateEngine(blocks: 24, blockSize: 4, maxBatchedTokens: 32, maxSequences: 8);
        var together = await Task.WhenAll(requests.Select(r => EngineTestModel.RunAsync(engine, r)));

        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(alone[i], together[i].Tokens[0]);
            Assert.Equal(FinishReason.Length, together[i].Finish[0]);
        }

        var stats = engine.GetStats();
        Assert.True(stats.Preemptions > 0, "the pool was meant to be too small to avoid preemption");
        Assert.Equal(0, stats.RunningSequences);
        Assert.Equal(0, stats.KvBlocksUsed);
    }

    [Fact]
    public async Task TokenBudgetAndSequenceCap_AreNeverExceeded()
    {
        var steps = new List<(int Tokens, int Sequences)>();
        var recorder = new ObservedRunner(new CpuModelRunner(fixture.Model, 32, 512, threads: 2), batch => steps.Add((batch.TokenCount, batch.SequenceCount)));
        using var engine = new InferenceEngine(fixture.Model, recorder, new EngineOptions
        {
            BlockSize = 4,
            KvCacheBytes = 128 * PagedKvCache.BlockBytes(fixture.Model.Config.LayerCount, fixture.Model.Config.KvDim, 4),
            MaxBatchedTokens = 32,
            MaxSequences = 5,
        });
        await Task.WhenAll(Enumerable.Range(0, 30).Select(i =>
            EngineTestModel.RunAsync(engine, EngineTestModel.Request(EngineTestModel.Prompt(100 + i, 5 + (i * 7 % 40)), maxTokens: 6))));

        Assert.NotEmpty(steps);
        Assert.All(steps, s => Assert.InRange(s.Tokens, 1, 32));
        Assert.All(steps, s => Assert.InRange(s.Sequences, 1, 5));
        Assert.Contains(steps, s => s.Tokens == 32); // the budget was actually reached
        Assert.Contains(steps, s => s.Sequences == 5); // and so was the cap
    }

    [Fact]
    public async Task ChunkedPrefill_GivesTheSameTokensAsOneShotPrefill()
    {
        int[] prompt = EngineTestModel.Prompt(5, 150);
        var request = EngineTestModel.Request(prompt, maxTokens: 12);
        using var oneShot = fixture.CreateEngine(maxBatchedTokens: 256);
        using var chunked = fixture.CreateEngine(maxBatchedTokens: 16);
        var a = await EngineTestModel.RunAsync(oneShot, request);
        var b = await EngineTestModel.RunAsync(chunked, request);
        Assert.Equal(a.Tokens[0], b.Tokens[0]);
    }

    [Fact]
    public void ChunkedPrefill_GivesTheSameLogitsAsOneShotPrefill()
    {
        var config = fixture.Model.Config;
        int[] prompt = EngineTestModel.Prompt(9, 45);
        using var runner = new CpuModelRunner(fixture.Model, 64, 128, threads: 2);
        var oneShot = new ContiguousKvCache(config, 1, 128);
        var chunked = new ContiguousKvCache(config, 1, 128);
        var expected = new float[config.VocabSize];
        runner.Forward(new ForwardBatch(prompt, Enumerable.Range(0, 45).ToArray(), [0], [45]), oneShot, expected);

        var actual = new float[config.VocabSize];
        for (int start = 0; start < 45; start += 8)
        {
            int n = Math.Min(8, 45 - start);
            runner.Forward(new ForwardBatch(prompt.AsSpan(start, n), Enumerable.Range(start, n).ToArray(), [0], [n]), chunked, actual);
        }

        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 1e-5f);
        }
    }

    [Fact]
    public async Task PreemptedRequests_ResumeWithTheTokensTheyWouldHaveHad()
    {
        // Greedy and seeded sampling alike must be unaffected by being preempted and recomputed.
        var requests = Enumerable.Range(0, 12)
            .Select(i => EngineTestModel.Request(EngineTestModel.Prompt(300 + i, 20), maxTokens: 40, temperature: i % 2 == 0 ? 0 : 1f, seed: 1000 + (ulong)i, priority: i % 3))
            .ToArray();
        using var roomy = fixture.CreateEngine(prefixCaching: false);
        var alone = new List<List<int>>();
        foreach (var r in requests)
        {
            alone.Add((await EngineTestModel.RunAsync(roomy, r)).Tokens[0]);
        }

        using var tight = fixture.CreateEngine(blocks: 40, blockSize: 4, maxBatchedTokens: 64, maxSequences: 12, prefixCaching: false);
        var together = await Task.WhenAll(requests.Select(r => EngineTestModel.RunAsync(tight, r)));
        Assert.True(tight.GetStats().Preemptions > 0, "no request was preempted; the test would prove nothing");
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(alone[i], together[i].Tokens[0]);
        }
    }

    [Fact]
    public async Task CancelledRequest_FreesItsBlocksAtOnce()
    {
        using var engine = fixture.CreateEngine(prefixCaching: false);
        using var cts = new CancellationTokenSource();
        int received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(1, 64), maxTokens: 400), cts.Token))
            {
                if (++received == 3)
                {
                    Assert.True(engine.GetStats().KvBlocksUsed > 0);
                    await cts.CancelAsync();
                }
            }
        });

        // The engine frees the blocks at its next step; allow it a moment to get there.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.GetStats().KvBlocksUsed > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(0, engine.GetStats().KvBlocksUsed);
        Assert.Equal(0, engine.GetStats().RunningSequences);
    }
}
