using System.Diagnostics;
using System.Globalization;
using System.Text;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;
using Kiln.Runtime.Synthetic;

namespace Kiln.Bench.Serving;

/// <summary>
/// <c>Kiln.Bench engine</c>: replays a real request trace against the engine and sweeps concurrency, printing
/// tables and writing them to bench/results/engine.md.
/// </summary>
internal static class ServingBench
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static async Task<int> RunAsync(ServingBenchOptions o, string resultsDirectory)
    {
        string trace = o.TracePath ?? FindTrace() ?? throw new FileNotFoundException("no trace given and ../shared/traces/AzureLLMInferenceTrace_conv.csv not found");
        string modelPath = RandomLlamaGguf.WriteCached(Path.Combine(resultsDirectory, "models"), o.Model);
        using var model = ModelLoader.Load(modelPath);
        var options = new EngineOptions
        {
            KvCacheBytes = (long)o.KvMegabytes << 20,
            MaxBatchedTokens = o.BatchTokens,
            MaxSequences = o.MaxSequences,
            MaxWaitingRequests = Math.Max(o.Requests, 256),
            Threads = o.Threads,
        };

        var report = new StringBuilder();
        report.AppendLine(C, $"Model: random Llama, {model.Weights.ParameterCount / 1e6:F1}M parameters (F32), hidden {o.Model.Hidden}, {o.Model.Layers} layers, vocab {o.Model.VocabSize}; {o.Threads} threads; KV pool {o.KvMegabytes} MiB, block 16, step budget {o.BatchTokens} tokens, at most {o.MaxSequences} sequences.");
        report.AppendLine();

        var requests = TraceRequest.Load(trace, o);
        var replay = await ReplayAsync(model, options, requests);
        report.AppendLine(C, $"## Trace replay: {requests.Count} requests of {Path.GetFileName(trace)}");
        report.AppendLine(C, $"Arrival gaps x{o.TimeScale}; prompt tokens x{o.ContextScale} (cap {o.MaxContext}), output tokens x{o.OutputScale} (cap {o.MaxOutput}); every prompt starts with the same 32-token system prompt.");
        report.AppendLine();
        report.AppendLine(replay.ToMarkdown());

        report.AppendLine("## Aggregate decode throughput by concurrency");
        report.AppendLine(C, $"Each sequence: 16 prompt tokens, {o.SweepOutput} output tokens, all submitted at once.");
        report.AppendLine();
        report.AppendLine("| concurrent sequences | decode tok/s (aggregate) | vs 1 sequence | time per output token p50 (ms) |");
        report.AppendLine("| ---: | ---: | ---: | ---: |");
        double? single = null;
        foreach (int c in o.Concurrency)
        {
            var (rate, tpot) = await SweepAsync(model, options, c, o.SweepOutput);
            single ??= rate;
            report.AppendLine(C, $"| {c} | {rate:F1} | {rate / single.Value:F2}x | {tpot:F2} |");
        }

        string text = report.ToString();
        Console.WriteLine(text);
        await File.WriteAllTextAsync(Path.Combine(resultsDirectory, "engine.md"), text);
        return 0;
    }

    private static async Task<ReplayResult> ReplayAsync(LoadedModel model, EngineOptions options, List<TraceRequest> requests)
    {
        using var engine = new InferenceEngine(model, options);
        int vocab = model.Config.VocabSize;
        int[] system = Prompt(-1, 32, vocab);
        await DrainAsync(engine, Request(Prompt(-2, 16, vocab), 4)); // warm-up

        var clock = Stopwatch.StartNew();
        var peak = new PeakSampler(engine);
        var samplerTask = peak.RunAsync();
        var runs = requests.Select((r, i) => Task.Run(async () =>
        {
            var delay = r.Arrival - clock.Elapsed;
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay);
            }

            int[] prompt = [.. system.Take(Math.Min(32, r.PromptTokens - 1)), .. Prompt(i, r.PromptTokens - Math.Min(32, r.PromptTokens - 1), vocab)];
            return await TimeAsync(engine, Request(prompt, r.OutputTokens), clock);
        })).ToArray();
        var timings = await Task.WhenAll(runs);
        double makespan = clock.Elapsed.TotalSeconds;
        peak.Stop();
        await samplerTask;
        var stats = engine.GetStats();
        return new ReplayResult(timings, makespan, peak.PeakBlocksUsed, stats.KvBlocksTotal, stats.PrefixCacheHitRate, stats.Preemptions);
    }

    private static async Task<(double Rate, double TpotMs)> SweepAsync(LoadedModel model, EngineOptions options, int concurrency, int outputTokens)
    {
        using var engine = new InferenceEngine(model, options with { PrefixCaching = false });
        int vocab = model.Config.VocabSize;
        await DrainAsync(engine, Request(Prompt(-2, 16, vocab), 4));
        var clock = Stopwatch.StartNew();
        var timings = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(i => TimeAsync(engine, Request(Prompt(1000 + i, 16, vocab), outputTokens), clock)));

        // Decode throughput: output tokens after each sequence's first, over the span in which decoding ran.
        double start = timings.Min(t => t.FirstToken);
        double end = timings.Max(t => t.Done);
        double decoded = timings.Sum(t => t.OutputTokens - 1);
        var tpot = timings.Select(t => t.TimePerOutputToken * 1000).Order().ToArray();
        return (decoded / (end - start), tpot[tpot.Length / 2]);
    }

    private static async Task<RequestTiming> TimeAsync(InferenceEngine engine, GenerationRequest request, Stopwatch clock)
    {
        double submitted = clock.Elapsed.TotalSeconds;
        double first = 0;
        int tokens = 0;
        int prompt = 0;
        await foreach (var e in engine.Submit(request))
        {
            if (e.TokenId >= 0 && tokens++ == 0)
            {
                first = clock.Elapsed.TotalSeconds;
            }

            prompt = e.Usage?.PromptTokens ?? prompt;
        }

        return new RequestTiming(submitted, first, clock.Elapsed.TotalSeconds, prompt, tokens);
    }

    private static async Task DrainAsync(InferenceEngine engine, GenerationRequest request)
    {
        await foreach (var _ in engine.Submit(request))
        {
        }
    }

    private static GenerationRequest Request(int[] prompt, int maxTokens) => new()
    {
        PromptTokenIds = prompt,
        Sampling = new SamplingParams { Temperature = 0, MaxTokens = maxTokens, IgnoreEos = true },
    };

    private static int[] Prompt(int seed, int length, int vocab)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => random.Next(SyntheticVocabulary.FirstByteToken + 256, vocab))];
    }

    private static string? FindTrace()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "traces", "AzureLLMInferenceTrace_conv.csv");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Samples the engine's KV usage while the replay runs.</summary>
    private sealed class PeakSampler(InferenceEngine engine)
    {
        private volatile bool _stopped;

        public int PeakBlocksUsed { get; private set; }

        public void Stop() => _stopped = true;

        public async Task RunAsync()
        {
            while (!_stopped)
            {
                PeakBlocksUsed = Math.Max(PeakBlocksUsed, engine.GetStats().KvBlocksUsed);
                await Task.Delay(20);
            }
        }
    }
}
