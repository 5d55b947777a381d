using System.Globalization;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;

namespace Kiln.Bench;

/// <summary>Command-line options of <c>kiln-bench cpu</c>.</summary>
internal sealed record BenchOptions
{
    public const string Usage =
        "usage: Kiln.Bench cpu [--vocab 32000] [--hidden 768] [--intermediate 2048] [--layers 12] [--heads 12] [--kv-heads 12]\n" +
        "                      [--type f32|f16|bf16|q8_0] [--tied] [--seed 1] [--prompt 128] [--decode 64] [--threads N]\n" +
        "                      [--runs 3] [--engines kiln,llama.cpp] [--model path.gguf]\n" +
        "Generates (once, cached in bench/results/models) a random-weight Llama GGUF and measures one sequence's prefill and\n" +
        "greedy decode speed in Kiln's CPU runner and in llama.cpp (LLamaSharp), same weights and thread count.";

    public RandomLlamaOptions Model { get; init; } = new()
    {
        VocabSize = 32000,
        Hidden = 768,
        Intermediate = 2048,
        Layers = 12,
        Heads = 12,
        KvHeads = 12,
        ContextLength = 2048,
        Seed = 1,
        Name = "kiln-bench-random-llama",
    };

    /// <summary>An existing GGUF file to use instead of a generated one.</summary>
    public string? ModelPath { get; init; }

    public int Prompt { get; init; } = 128;

    public int Decode { get; init; } = 64;

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Measured runs after the warm-up; the table shows the median.</summary>
    public int Runs { get; init; } = 3;

    public IReadOnlyList<string> Engines { get; init; } = ["kiln", "llama.cpp"];

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        var model = options.Model;
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (arg)
            {
                case "--vocab": model = model with { VocabSize = Int() }; break;
                case "--hidden": model = model with { Hidden = Int() }; break;
                case "--intermediate": model = model with { Intermediate = Int() }; break;
                case "--layers": model = model with { Layers = Int() }; break;
                case "--heads": model = model with { Heads = Int() }; break;
                case "--kv-heads": model = model with { KvHeads = Int() }; break;
                case "--seed": model = model with { Seed = (ulong)Int() }; break;
                case "--tied": model = model with { TiedEmbeddings = true }; break;
                case "--type": model = model with { WeightType = ParseType(Next()) }; break;
                case "--model": options = options with { ModelPath = Next() }; break;
                case "--prompt": options = options with { Prompt = Int() }; break;
                case "--decode": options = options with { Decode = Int() }; break;
                case "--threads": options = options with { Threads = Int() }; break;
                case "--runs": options = options with { Runs = Int() }; break;
                case "--engines": options = options with { Engines = Next().Split(',', StringSplitOptions.RemoveEmptyEntries) }; break;
                default: throw new ArgumentException($"unknown option '{arg}'");
            }
        }

        if (options.Prompt < 1 || options.Decode < 1 || options.Threads < 1 || options.Runs < 1)
        {
            throw new ArgumentException("--prompt, --decode, --threads and --runs must be at least 1");
        }

        int context = Math.Max(model.ContextLength, options.Prompt + options.Decode);
        return options with { Model = model with { ContextLength = context } };
    }

    private static GgmlType ParseType(string s) => s.ToUpperInvariant() switch
    {
        "F32" => GgmlType.F32,
        "F16" => GgmlType.F16,
        "BF16" => GgmlType.BF16,
        "Q8_0" or "Q8" => GgmlType.Q8_0,
        _ => throw new ArgumentException($"unknown weight type '{s}' (f32, f16, bf16, q8_0)"),
    };
}
