using System.Collections.Concurrent;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Sampling;
using Kiln.Runtime.Synthetic;
using Microsoft.Extensions.Time.Testing;

namespace Kiln.Tests.Engine;

/// <summary>
/// Admission that no single caller can break: every sample counts against the engine's bounds, a call of several
/// prompts is admitted whole or refused whole, a burst of running-plus-waiting is taken whole, callers share the
/// running slots fairly and can be bounded, and a caller that stops reading stops being served.
/// </summary>
public sealed class AdmissionTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BurstOfRunningSlotsPlusWaitingQueue_IsAdmittedWhole_OneMoreIsRefused()
    {
        // 2 running + 4 waiting: six submissions are taken while the first step is held, though none of them runs yet.
        using var gate = new ManualResetEventSlim(false);
        using var engine = Engine(maxSequences: 2, maxWaiting: 4, observe: _ => gate.Wait());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        for (int i = 0; i < 6; i++)
        {
            engine.Submit(Request(i, caller: $"c{i}"), cts.Token);
        }

        Assert.Throws<EngineOverloadedException>(() => engine.Submit(Request(9), cts.Token));
        await cts.CancelAsync();
        gate.Set();
    }

    [Fact]
    public async Task CallOfSeveralPrompts_IsRefusedWhole_AndLeavesNothingQueued()
    {
        using var gate = new ManualResetEventSlim(false);
        using var engine = Engine(maxSequences: 1, maxWaiting: 2, observe: _ => gate.Wait());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        engine.Submit(Request(0), cts.Token); // takes one of the three places

        Assert.Throws<EngineOverloadedException>(() => engine.SubmitAll([Request(1), Request(2), Request(3)], cts.Token));
        Assert.Equal(1, engine.GetStats().WaitingRequests); // only the first: the refused call queued nothing

        var streams = engine.SubmitAll([Request(4), Request(5)], cts.Token); // both places are still free
        Assert.Equal(2, streams.Count);
        Assert.Throws<EngineOverloadedException>(() => engine.Submit(Request(6), cts.Token));
        await cts.CancelAsync();
        gate.Set();
    }

    [Fact]
    public void SamplesBeyondTheSequenceCap_AreRefusedAsInvalid()
    {
        using var engine = Engine(maxSequences: 4, maxWaiting: 8);
        var tooMany = Assert.ThrowsAny<ArgumentException>(() => engine.Submit(Request(0, n: 5)));
        Assert.Equal("n", tooMany.ParamName);

        // Two prompts of n = 4 fit the sequence cap each, but together never fit 4 running + 8 waiting... they do (8);
        // three prompts of n = 4 (12) fit too; four (16) can never be admitted at once.
        var call = Assert.ThrowsAny<ArgumentException>(() => engine.SubmitAll([Request(1, n: 4), Request(2, n: 4), Request(3, n: 4), Request(4, n: 4)]));
        Assert.Equal("n", call.ParamName);
        Assert.DoesNotContain("overloaded", call.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ParallelSamples_CountAgainstTheSequenceCap_NeverMoreRunThanIt()
    {
        // What runs is read at every step (the stats as the previous step published them), on the engine's thread.
        var running = new ConcurrentQueue<int>();
        var self = new System.Runtime.CompilerServices.StrongBox<InferenceEngine?>();
        using var gate = new ManualResetEventSlim(false);
        using var engine = Engine(maxSequences: 4, maxWaiting: 16, observe: b =>
        {
            gate.Wait();
            running.Enqueue(self.Value?.GetStats().RunningSequences ?? 0);
        });
        self.Value = engine;

        // A first request holds the first step while one request of three samples and three single ones queue up
        // behind it; all four are then admitted in one step, before the three samples fork.
        var first = EngineTestModel.RunAsync(engine, Request(9, maxTokens: 1), Ct);
        var requests = new[] { Request(0, n: 3, maxTokens: 6), Request(1, maxTokens: 6), Request(2, maxTokens: 6), Request(3, maxTokens: 6) };
        var runs = requests.Select(r => EngineTestModel.RunAsync(engine, r, Ct)).ToArray();
        gate.Set();
        await first;
        var done = await Task.WhenAll(runs);

        Assert.All(done.Zip(requests), d => Assert.Equal(6 * d.Second.Sampling.N, d.First.Usage!.CompletionTokens));
        Assert.InRange(running.Max(), 1, 4);
    }

    [Fact]
    public async Task PerCallerBound_RefusesTheCallerOverIt_AndNobodyElse()
    {
        using var gate = new ManualResetEventSlim(false);
        using var engine = Engine(maxSequences: 2, maxWaiting: 16, maxPerCaller: 3, observe: _ => gate.Wait());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        engine.Submit(Request(0, n: 2, caller: "key-1"), cts.Token);
        engine.Submit(Request(1, caller: "key-1"), cts.Token);

        var refused = Assert.Throws<EngineOverloadedException>(() => engine.Submit(Request(2, caller: "key-1"), cts.Token));
        Assert.Contains("caller", refused.Message, StringComparison.Ordinal);
        engine.Submit(Request(3, caller: "key-2"), cts.Token); // another caller still gets in
        Assert.Equal("n", Assert.ThrowsAny<ArgumentException>(() => engine.Submit(Request(4, n: 4, caller: "key-3"), cts.Token)).ParamName);

        await cts.CancelAsync();
        gate.Set();
    }

    [Fact]
    public async Task CallerWhoAsksOnce_RunsNextAfterTheRunningOne_NotBehindAFloodThatCameFirst()
    {
        // One running slot. The flood's four requests arrive first; the single caller's one after them. Each prompt's
        // first token tells whose prefill a step runs.
        var prefills = new ConcurrentQueue<int>();
        using var gate = new ManualResetEventSlim(false);
        using var engine = Engine(maxSequences: 1, maxWaiting: 16, observe: b =>
        {
            gate.Wait();
            if (b.Positions[0] == 0)
            {
                prefills.Enqueue(b.TokenIds[0]);
            }
        });

        var flood = Enumerable.Range(0, 4).Select(i => Request(i, maxTokens: 4, caller: "flood")).ToArray();
        var once = Request(10, maxTokens: 4, caller: "once");
        var runs = flood.Select(r => EngineTestModel.RunAsync(engine, r, Ct)).ToList(); // submitted in this order
        runs.Add(EngineTestModel.RunAsync(engine, once, Ct));
        gate.Set();
        await Task.WhenAll(runs);

        int[] order = [.. prefills];
        Assert.Equal(5, order.Length);
        Assert.True(once.PromptTokenIds![0] == order[1], $"prefill order {string.Join(' ', order)}; the single caller's starts with {once.PromptTokenIds[0]}"); // right after the flood's first, which was already running
    }

    [Fact]
    public async Task CallerWhoAsksOnce_WaitsAtMostOneRequestsSteps_BehindTwoAbusersWholeCalls()
    {
        // 64 slots full with two abusers: 128 prompts of one call, and two calls of n = 64, 16 tokens each. A third
        // caller's request arrives among them: it must start within one abusive request's 16 steps (plus its own).
        // Its prompt starts with a byte token, which no other prompt has (EngineTestModel.Prompt draws above them).
        int steps = 0;
        int politeStart = -1;
        int[] politePrompt = [SyntheticVocabulary.FirstByteToken + 65, .. EngineTestModel.Prompt(99, 7)];
        using var engine = Engine(maxSequences: 64, maxWaiting: 256, observe: b =>
        {
            int step = Interlocked.Increment(ref steps);
            for (int i = 0, offset = 0; i < b.SequenceCount; offset += b.QueryLengths[i], i++)
            {
                if (b.Positions[offset] == 0 && b.TokenIds[offset] == politePrompt[0] && politeStart < 0)
                {
                    politeStart = step;
                }
            }
        });

        var runs = new List<Task<Completion>>();
        var prompts = engine.SubmitAll([.. Enumerable.Range(0, 128).Select(i => Request(i, maxTokens: 16, caller: "prompts"))], Ct);
        runs.AddRange(prompts.Select(Drain));
        runs.Add(EngineTestModel.RunAsync(engine, Request(200, n: 64, maxTokens: 16, caller: "samples"), Ct));
        runs.Add(EngineTestModel.RunAsync(engine, Request(201, n: 64, maxTokens: 16, caller: "samples"), Ct));
        await WaitUntil(() => Volatile.Read(ref steps) >= 20); // the engine is full and busy
        int arrived = Volatile.Read(ref steps);
        var polite = EngineTestModel.RunAsync(engine, new GenerationRequest
        {
            PromptTokenIds = politePrompt,
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = 4, IgnoreEos = true },
            Caller = "polite",
        }, Ct);
        await Task.WhenAll([.. runs, polite]);

        Assert.True(politeStart > arrived, $"the polite request was seen at step {politeStart}, before it arrived at {arrived}");
        Assert.True(politeStart - arrived <= 16 + 2, $"the polite request arrived at step {arrived} and started at step {politeStart} of {steps}");
    }

    private static async Task<Completion> Drain(IAsyncEnumerable<TokenEvent> stream)
    {
        var completion = new Completion(1);
        await foreach (var e in stream)
        {
            completion.Usage ??= e.Usage;
        }

        return completion;
    }

    [Fact]
    public async Task CallerThatStopsReading_StopsBeingScheduled_KeepsItsPlace_AndResumesWhenItReads()
    {
        var steps = new ConcurrentQueue<int>();
        using var engine = Engine(maxSequences: 4, maxWaiting: 8, outputBuffer: 4, observe: b => steps.Enqueue(b.SequenceCount));

        // The stalled caller gets a prefill and three decodes (four events unread), then nothing more.
        var stalled = engine.Submit(Request(0, maxTokens: 40, caller: "slow"), Ct);
        await WaitUntil(() => steps.Count >= 4);

        var reader = await EngineTestModel.RunAsync(engine, Request(1, maxTokens: 20, caller: "fast"), Ct);
        Assert.Equal(20, reader.Usage!.CompletionTokens);
        int[] all = [.. steps];
        Assert.Equal(4 + 20, all.Length); // the stalled request took no step while the other ran...
        Assert.All(all[4..], rows => Assert.Equal(1, rows)); // ...and shared none

        int tokens = 0;
        FinishReason? finish = null;
        await foreach (var e in stalled)
        {
            tokens += e.TokenId >= 0 ? 1 : 0;
            finish = e.FinishReason ?? finish;
        }

        Assert.Equal(40, tokens); // read again, it ran to its end
        Assert.Equal(FinishReason.Length, finish);
    }

    [Fact]
    public async Task CallerThatStopsReading_IsCancelledAfterTheTimeout()
    {
        var time = new FakeTimeProvider();
        int steps = 0;
        using var engine = Engine(maxSequences: 4, maxWaiting: 8, outputBuffer: 2, stalledTimeoutSeconds: 30, time: time, observe: _ => Interlocked.Increment(ref steps));
        var stalled = engine.Submit(Request(0, maxTokens: 100), Ct);
        await WaitUntil(() => Volatile.Read(ref steps) >= 2);

        // The engine notes when it finds the buffer full, then cancels once 30 s have passed since: advance until it has.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (engine.GetStats().RunningSequences > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the stalled request was not cancelled");
            time.Advance(TimeSpan.FromSeconds(31));
            await Task.Delay(20, Ct);
        }

        var events = new List<TokenEvent>();
        await foreach (var e in stalled)
        {
            events.Add(e);
        }

        Assert.Equal(2, events.Count(e => e.TokenId >= 0)); // nothing was generated past the buffer
        Assert.Equal(FinishReason.Cancelled, events[^1].FinishReason);
    }

    [Fact]
    public void TextPromptFarLongerThanTheContext_IsRefusedBeforeItIsTokenized()
    {
        using var engine = Engine(maxSequences: 2, maxWaiting: 2);
        var request = new GenerationRequest { Prompt = new string('a', 4_000_000), Sampling = new SamplingParams { MaxTokens = 1 } };
        var error = Assert.Throws<ContextLengthExceededException>(() => engine.Submit(request));
        Assert.Contains("characters", error.Message, StringComparison.Ordinal); // the length bound, not a token count
    }

    private InferenceEngine Engine(
        int maxSequences, int maxWaiting, int maxPerCaller = 0, int outputBuffer = 256, double stalledTimeoutSeconds = 60, TimeProvider? time = null, BatchObserver? observe = null) =>
        new(fixture.Model, new ObservedRunner(new CpuModelRunner(fixture.Model, 64, 512, threads: 2), observe ?? (_ => { })), new EngineOptions
        {
            BlockSize = 4,
            KvCacheBytes = 512 * PagedKvCache.BlockBytes(fixture.Model.Config.LayerCount, fixture.Model.Config.KvDim, 4),
            MaxBatchedTokens = 64,
            MaxSequences = maxSequences,
            MaxWaitingRequests = maxWaiting,
            MaxSequencesPerCaller = maxPerCaller,
            OutputBufferTokens = outputBuffer,
            StalledReaderTimeoutSeconds = stalledTimeoutSeconds,
        }, time);

    private static GenerationRequest Request(int seed, int n = 1, int maxTokens = 8, string? caller = null) => new()
    {
        PromptTokenIds = EngineTestModel.Prompt(seed, 8),
        Sampling = new SamplingParams { Temperature = n > 1 ? 1 : 0, Seed = 5, MaxTokens = maxTokens, N = n, IgnoreEos = true },
        Caller = caller,
    };

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the engine did not get there within 10 s");
            await Task.Delay(5, Ct);
        }
    }
}
