using System.CommandLine;
using Kiln.Bench.Common;
using Kiln.Runtime.Synthetic;

namespace Kiln.Bench.Serving;

/// <summary>Options of <c>Kiln.Bench engine</c>: the generated model, the trace replay and the concurrency sweep.</summary>
internal sealed record ServingBenchOptions
{
    public RandomLlamaOptions Model { get; init; } = new()
    {
        VocabSize = 8192,
        Hidden = 512,
        Intermediate = 1408,
        Layers = 8,
        Heads = 8,
        KvHeads = 4,
        ContextLength = 1024,
        Seed = 3,
        Name = "kiln-serving-bench-llama",
    };

    public string? TracePath { get; init; }

    public int Requests { get; init; } = 240;

    /// <summary>Multiplies the trace's gaps between arrivals (below 1 compresses time).</summary>
    public double TimeScale { get; init; } = 0.5;

    public double ContextScale { get; init; } = 0.125;

    public int MaxContext { get; init; } = 384;

    public double OutputScale { get; init; } = 0.25;

    public int MaxOutput { get; init; } = 48;

    public IReadOnlyList<int> Concurrency { get; init; } = [1, 4, 16, 64];

    /// <summary>Output tokens per request in the concurrency sweep.</summary>
    public int SweepOutput { get; init; } = 32;

    public int KvMegabytes { get; init; } = 256;

    public int BatchTokens { get; init; } = 256;

    public int MaxSequences { get; init; } = 64;

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>The <c>engine</c> command: its options, read into a <see cref="ServingBenchOptions"/> that <paramref name="run"/> is given.</summary>
    public static Command CreateCommand(Func<ServingBenchOptions, Task<int>> run)
    {
        var d = new ServingBenchOptions();
        var trace = new Option<string?>("--trace")
        {
            Description = "An Azure LLM inference trace (CSV). Omitted: ../shared/traces/AzureLLMInferenceTrace_conv.csv.",
            HelpName = "PATH",
        };
        var requests = BenchCommandLine.Int("--requests", "Rows of the trace to replay, from the first.", d.Requests);
        var timeScale = BenchCommandLine.Double("--time-scale", "Multiplies the trace's gaps between arrivals (below 1 compresses time).", d.TimeScale);
        var contextScale = BenchCommandLine.Double("--context-scale", "Multiplies the trace's prompt tokens.", d.ContextScale);
        var maxContext = BenchCommandLine.Int("--max-context", "Cap on a request's prompt tokens.", d.MaxContext);
        var outputScale = BenchCommandLine.Double("--output-scale", "Multiplies the trace's output tokens.", d.OutputScale);
        var maxOutput = BenchCommandLine.Int("--max-output", "Cap on a request's output tokens.", d.MaxOutput);
        var concurrency = BenchCommandLine.IntList("--concurrency", "Concurrent sequences of the throughput sweep.", [.. d.Concurrency]);
        var sweepOutput = BenchCommandLine.Int("--sweep-output", "Output tokens per request in the concurrency sweep.", d.SweepOutput);
        var kvMb = BenchCommandLine.Int("--kv-mb", "KV cache pool in MiB.", d.KvMegabytes);
        var batchTokens = BenchCommandLine.Int("--batch-tokens", "Tokens the engine batches into one step at most.", d.BatchTokens);
        var maxSeqs = BenchCommandLine.Int("--max-seqs", "Sequences the engine runs at once at most.", d.MaxSequences);
        var threads = BenchCommandLine.Int("--threads", "CPU threads of the engine.", d.Threads);
        var command = new Command("engine",
            "Replays the first --requests rows of an Azure LLM inference trace against the engine (arrival gaps multiplied by " +
            "--time-scale, token counts scaled and capped to fit a small CPU), then measures aggregate decode throughput at each " +
            "--concurrency. The model is a generated random-weight Llama (cached in bench/results/models).")
        {
            trace, requests, timeScale, contextScale, maxContext, outputScale, maxOutput, concurrency, sweepOutput, kvMb, batchTokens, maxSeqs, threads,
        };
        command.SetAction((result, _) => run(d with
        {
            TracePath = result.GetValue(trace),
            Requests = result.GetValue(requests),
            TimeScale = result.GetValue(timeScale),
            ContextScale = result.GetValue(contextScale),
            MaxContext = result.GetValue(maxContext),
            OutputScale = result.GetValue(outputScale),
            MaxOutput = result.GetValue(maxOutput),
            Concurrency = BenchCommandLine.Ints(result, concurrency),
            SweepOutput = result.GetValue(sweepOutput),
            KvMegabytes = result.GetValue(kvMb),
            BatchTokens = result.GetValue(batchTokens),
            MaxSequences = result.GetValue(maxSeqs),
            Threads = result.GetValue(threads),
        }));
        return command;
    }
}
