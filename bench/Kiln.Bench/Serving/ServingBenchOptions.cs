using System.Globalization;
using Kiln.Runtime.Synthetic;

namespace Kiln.Bench.Serving;

/// <summary>Options of <c>Kiln.Bench engine</c>: the generated model, the trace replay and the concurrency sweep.</summary>
internal sealed record ServingBenchOptions
{
    public const string Usage =
        "usage: Kiln.Bench engine [--trace PATH] [--requests 240] [--time-scale 0.5] [--context-scale 0.125] [--max-context 384]\n" +
        "                         [--output-scale 0.25] [--max-output 48] [--concurrency 1,4,16,64] [--sweep-output 32]\n" +
        "                         [--kv-mb 256] [--batch-tokens 256] [--max-seqs 64] [--threads N]\n" +
        "Replays the first REQUESTS rows of an Azure LLM inference trace against the engine (arrival gaps multiplied by\n" +
        "TIME-SCALE, token counts scaled and capped to fit a small CPU), then measures aggregate decode throughput at each\n" +
        "concurrency. The model is a generated random-weight Llama (cached in bench/results/models).";

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

    public static ServingBenchOptions Parse(IReadOnlyList<string> args)
    {
        var o = new ServingBenchOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            double Double() => double.Parse(Next(), CultureInfo.InvariantCulture);
            o = arg switch
            {
                "--trace" => o with { TracePath = Next() },
                "--requests" => o with { Requests = Int() },
                "--time-scale" => o with { TimeScale = Double() },
                "--context-scale" => o with { ContextScale = Double() },
                "--max-context" => o with { MaxContext = Int() },
                "--output-scale" => o with { OutputScale = Double() },
                "--max-output" => o with { MaxOutput = Int() },
                "--concurrency" => o with { Concurrency = [.. Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] },
                "--sweep-output" => o with { SweepOutput = Int() },
                "--kv-mb" => o with { KvMegabytes = Int() },
                "--batch-tokens" => o with { BatchTokens = Int() },
                "--max-seqs" => o with { MaxSequences = Int() },
                "--threads" => o with { Threads = Int() },
                _ => throw new ArgumentException($"unknown option '{arg}'"),
            };
        }

        return o;
    }
}
