using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Engine;

/// <summary>Prefix caching, admission control, parallel sampling, failure isolation and stats.</summary>
public sealed class EngineApiTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    [Fact]
    public async Task EngineOverADescriptionAndARunner_ServesLikeTheEngineOverTheWholeModel()
    {
        // How a GPU engine is built: the runner holds the weights; the engine gets the tokenizer, EOS and config only.
        var request = new GenerationRequest { Prompt = "Kiln keeps the model warm", Sampling = new SamplingParams { Temperature = 0, MaxTokens = 12 } };
        var options = new EngineOptions { BlockSize = 4, KvCacheBytes = 4 << 20, MaxBatchedTokens = 64, MaxSequences = 8, Threads = 2 };
        Completion expected, actual;
        using (var whole = new InferenceEngine(fixture.Model, options))
        {
            expected = await EngineTestModel.RunAsync(whole, request, TestContext.Current.CancellationToken);
        }

        var runner = new CpuModelRunner(fixture.Model, maxBatchTokens: 64, maxContext: 512);
        using (var described = new InferenceEngine(fixture.Model.Description, runner, options))
        {
            Assert.Same(fixture.Model.Description, described.Model);
            actual = await EngineTestModel.RunAsync(described, request, TestContext.Current.CancellationToken);
        }

        Assert.Equal(expected.Usage!.PromptTokens, actual.Usage!.PromptTokens); // the text was encoded the same way
        Assert.Equal(expected.Tokens[0], actual.Tokens[0]);
        Assert.False(string.IsNullOrEmpty(actual.Text[0]), "the description's tokenizer must decode the output");
        Assert.Equal(expected.Text[0], actual.Text[0]);
        Assert.Equal(expected.Finish[0], actual.Finish[0]);
    }

    [Fact]
    public async Task SecondRequestWithSamePrompt_PrefillsOnlyItsUncachedTail()
    {
        using var engine = fixture.CreateEngine(blockSize: 4);
        int[] prompt = EngineTestModel.Prompt(42, 203);
        var first = await EngineTestModel.RunAsync(engine, EngineTestModel.Request(prompt, maxTokens: 5));
        var second = await EngineTestModel.RunAsync(engine, EngineTestModel.Request(prompt, maxTokens: 5));

        Assert.Equal(0, first.Usage!.CachedPromptTokens);
        Assert.Equal(200, second.Usage!.CachedPromptTokens); // every full block of 4 (the last token is always computed)
        Assert.Equal(203, second.Usage.PromptTokens);
        Assert.Equal(first.Tokens[0], second.Tokens[0]);
        Assert.True(engine.GetStats().PrefixCacheHitRate > 0.4);
    }

    [Fact]
    public async Task FullWaitingQueue_FailsFastAsOverloaded()
    {
        using var engine = fixture.CreateEngine(maxSequences: 1, maxWaiting: 2, maxBatchedTokens: 16);
        using var cts = new CancellationTokenSource();
        var streams = new List<IAsyncEnumerable<TokenEvent>>();
        var overloaded = Assert.Throws<EngineOverloadedException>(() =>
        {
            for (int i = 0; i < 50; i++)
            {
                streams.Add(engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(i, 100), maxTokens: 200), cts.Token));
            }
        });
        Assert.Contains("overloaded", overloaded.Message, StringComparison.Ordinal);
        Assert.InRange(streams.Count, 2, 4); // two waiting, plus whatever the engine admitted meanwhile
        await cts.CancelAsync();
    }

    [Fact]
    public async Task WaitingQueueBound_CountsRequestsTheEngineAlreadyQueued()
    {
        // One sequence runs at a time; the rest wait in the scheduler. The bound must hold after the engine thread
        // has drained its inbox, not only for requests it has not seen yet.
        using var engine = OneSlowSequence(maxWaiting: 3);
        using var cts = new CancellationTokenSource();
        var accepted = new List<IAsyncEnumerable<TokenEvent>> { engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(0, 20), maxTokens: 300), cts.Token) };
        await WaitUntil(() => engine.GetStats().RunningSequences == 1);

        for (int i = 1; i <= 3; i++)
        {
            accepted.Add(engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(i, 20), maxTokens: 300), cts.Token));
        }

        await WaitUntil(() => engine.InboxRequests == 0); // drained into the scheduler's queue
        Assert.Equal(3, engine.GetStats().WaitingRequests);
        Assert.Throws<EngineOverloadedException>(() => engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(9, 20), maxTokens: 4)));
        await cts.CancelAsync();
    }

    [Fact]
    public async Task WaitingQueueBound_FreesThePlacesOfCancelledRequests()
    {
        // As above: one slow sequence runs, two may wait. Cancelled waiting requests must give their places back, both
        // while the engine runs and once it has nothing left to do and sleeps.
        using var engine = OneSlowSequence(maxWaiting: 2);
        var request = EngineTestModel.Request(EngineTestModel.Prompt(0, 20), maxTokens: 300);
        using var rest = new CancellationTokenSource();
        engine.Submit(request, rest.Token);
        await WaitUntil(() => engine.GetStats().RunningSequences == 1);
        using var waiting = new CancellationTokenSource();
        engine.Submit(request, waiting.Token);
        engine.Submit(request, waiting.Token);
        Assert.Throws<EngineOverloadedException>(() => engine.Submit(request));

        await waiting.CancelAsync();
        await SubmitWithin(engine, request, rest.Token); // accepted once the cancellations are counted...
        engine.Submit(request, rest.Token); // ...and then a second at once: both places came back
        Assert.Throws<EngineOverloadedException>(() => engine.Submit(request));

        // The running request and both waiting ones cancelled at once (during a step): the engine has nothing left to
        // do and sleeps, and the queue must be free then too, not full of requests that are gone.
        await rest.CancelAsync();
        await WaitUntil(() => engine.GetStats() is { RunningSequences: 0, WaitingRequests: 0 });
        using var idle = new CancellationTokenSource();
        await SubmitWithin(engine, request, idle.Token);
        engine.Submit(request, idle.Token);
        await idle.CancelAsync();
    }

    // One sequence runs at a time and the rest wait. Each step is slowed down so the running request cannot finish
    // (and let a waiting one in) during a test.
    private InferenceEngine OneSlowSequence(int maxWaiting) =>
        new(fixture.Model, new ObservedRunner(new CpuModelRunner(fixture.Model, 16, 512, threads: 2), _ => Thread.Sleep(20)), new EngineOptions
        {
            BlockSize = 4,
            KvCacheBytes = 256 * PagedKvCache.BlockBytes(fixture.Model.Config.LayerCount, fixture.Model.Config.KvDim, 4),
            MaxBatchedTokens = 16,
            MaxSequences = 1,
            MaxWaitingRequests = maxWaiting,
        });

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the engine did not get there within 10 s");
            await Task.Delay(10);
        }
    }

    // Submits, retrying while the engine reports overload, for up to 10 s: for places the engine thread frees.
    private static async Task SubmitWithin(InferenceEngine engine, GenerationRequest request, CancellationToken token)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                engine.Submit(request, token);
                return;
            }
            catch (EngineOverloadedException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(10, CancellationToken.None);
            }
        }
    }

    [Fact]
    public async Task ParallelSamples_ShareThePromptAndReproduce()
    {
        using var engine = fixture.CreateEngine(blockSize: 4);
        var request = EngineTestModel.Request(EngineTestModel.Prompt(3, 30), maxTokens: 16, temperature: 1.2f, seed: 77, n: 3);
        var a = await EngineTestModel.RunAsync(engine, request);
        var b = await EngineTestModel.RunAsync(engine, request);

        Assert.Equal(3 * 16, a.Usage!.CompletionTokens);
        Assert.Equal(30, a.Usage.PromptTokens);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(16, a.Tokens[k].Count);
            Assert.Equal(a.Tokens[k], b.Tokens[k]);
        }

        Assert.False(a.Tokens[0].SequenceEqual(a.Tokens[1]) && a.Tokens[1].SequenceEqual(a.Tokens[2]), "samples should differ at temperature 1.2");
        Assert.Equal(0, engine.GetStats().KvBlocksUsed);
    }

    [Fact]
    public async Task FailingStep_FailsOnlyTheRequestsInIt()
    {
        const int Poison = 499;
        // A step that contains the poison token fails, as a device fault would.
        var runner = new ObservedRunner(new CpuModelRunner(fixture.Model, 64, 512, threads: 2), batch =>
        {
            if (batch.TokenIds.Contains(Poison))
            {
                throw new InvalidOperationException("injected device fault");
            }
        });
        using var engine = new InferenceEngine(fixture.Model, runner, new EngineOptions
        {
            BlockSize = 4,
            KvCacheBytes = 256 * PagedKvCache.BlockBytes(fixture.Model.Config.LayerCount, fixture.Model.Config.KvDim, 4),
            MaxBatchedTokens = 64,
        });

        var failing = EngineTestModel.RunAsync(engine, EngineTestModel.Request([.. EngineTestModel.Prompt(1, 10), Poison], maxTokens: 4));
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing);

        var healthy = await EngineTestModel.RunAsync(engine, EngineTestModel.Request(EngineTestModel.Prompt(2, 10), maxTokens: 4));
        Assert.Equal(4, healthy.Tokens[0].Count);
        Assert.Equal(0, engine.GetStats().KvBlocksUsed);
    }

    [Fact]
    public void InvalidRequests_AreRejectedAtSubmission()
    {
        using var engine = fixture.CreateEngine(blocks: 64, blockSize: 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.Submit(EngineTestModel.Request([1, 2, 99999], maxTokens: 4)));
        Assert.Throws<ContextLengthExceededException>(() => engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(1, 250), maxTokens: 100)));
        Assert.ThrowsAny<ArgumentException>(() => engine.Submit(new GenerationRequest { PromptTokenIds = [5], Sampling = new SamplingParams { TopP = 0 } }));
    }

    [Fact]
    public async Task Stats_ReportBacklogWhileWorking_AndNoneWhenIdle()
    {
        using var engine = fixture.CreateEngine(maxBatchedTokens: 8, maxSequences: 2);
        using var cts = new CancellationTokenSource();
        var runs = Enumerable.Range(0, 6).Select(i => EngineTestModel.RunAsync(engine, EngineTestModel.Request(EngineTestModel.Prompt(i, 40), maxTokens: 30), cts.Token)).ToArray();
        var busy = engine.GetStats();
        Assert.True(busy.TokenBacklog > 0);
        Assert.True(busy.WaitingRequests + busy.RunningSequences > 0);
        Assert.Equal(1, busy.TensorParallelSize);
        await Task.WhenAll(runs);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.GetStats().TokenBacklog > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        var idle = engine.GetStats();
        Assert.Equal(0, idle.TokenBacklog);
        Assert.Equal(0, idle.WaitingRequests);
        Assert.Equal(6, idle.CompletedRequests);
    }
}
