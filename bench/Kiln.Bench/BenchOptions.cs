using System.CommandLine;
using System.CommandLine.Parsing;
using Kiln.Bench.Common;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;
using LLama.Native;

namespace Kiln.Bench;

/// <summary>Command-line options of <c>kiln-bench cpu</c>.</summary>
internal sealed record BenchOptions
{
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

    /// <summary>
    /// A llama.cpp quantization mix (Q4_K_M, Q6_K, Q4_0, ...) applied by llama.cpp's own quantizer to the generated
    /// F32 model, as users' downloaded files are made; null to use the generated file as is.
    /// </summary>
    public LLamaFtype? Quantize { get; init; }

    public int Prompt { get; init; } = 128;

    public int Decode { get; init; } = 64;

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Measured runs after the warm-up; the table shows the median.</summary>
    public int Runs { get; init; } = 3;

    public IReadOnlyList<string> Engines { get; init; } = ["kiln", "llama.cpp"];

    /// <summary>The <c>cpu</c> command: its options, read into a <see cref="BenchOptions"/> that <paramref name="run"/> is given.</summary>
    public static Command CreateCommand(Func<BenchOptions, int> run)
    {
        var defaults = new BenchOptions();
        var m = defaults.Model;
        var vocab = BenchCommandLine.Int("--vocab", "Vocabulary size of the generated model.", m.VocabSize);
        var hidden = BenchCommandLine.Int("--hidden", "Hidden size.", m.Hidden);
        var intermediate = BenchCommandLine.Int("--intermediate", "Feed-forward (intermediate) size.", m.Intermediate);
        var layers = BenchCommandLine.Int("--layers", "Transformer layers.", m.Layers);
        var heads = BenchCommandLine.Int("--heads", "Attention heads.", m.Heads);
        var kvHeads = BenchCommandLine.Int("--kv-heads", "Key/value heads.", m.KvHeads);
        var type = new Option<GgmlType>("--type")
        {
            Description = "Storage of the weight matrices.",
            HelpName = "f32|f16|bf16|q8_0",
            DefaultValueFactory = _ => m.WeightType,
            CustomParser = ParseType,
        };
        var quantize = new Option<LLamaFtype?>("--quantize")
        {
            Description = "Quantize the generated F32 model with llama.cpp's quantizer to this mix (cached beside it).",
            HelpName = "q4_0|q4_1|q5_0|q5_1|q2_k|q3_k_m|q4_k_m|q5_k_m|q6_k|q8_0",
            CustomParser = ParseMix,
        };
        var tied = new Option<bool>("--tied") { Description = "Tie the classifier to the token embeddings." };
        var seed = BenchCommandLine.Int("--seed", "Seed of the random weights.", (int)m.Seed);
        var model = new Option<string?>("--model") { Description = "An existing GGUF file to use instead of a generated one.", HelpName = "path.gguf" };
        var prompt = BenchCommandLine.Int("--prompt", "Prompt tokens (one prefill step).", defaults.Prompt, minimum: 1);
        var decode = BenchCommandLine.Int("--decode", "Greedy decode steps after the prompt.", defaults.Decode, minimum: 1);
        var threads = BenchCommandLine.Int("--threads", "CPU threads, the same for every engine.", defaults.Threads, minimum: 1);
        var runs = BenchCommandLine.Int("--runs", "Measured runs after the warm-up; the table shows the median.", defaults.Runs, minimum: 1);
        var engines = new Option<string>("--engines")
        {
            Description = "Engines to measure, comma-separated: kiln, llama.cpp.",
            DefaultValueFactory = _ => string.Join(',', defaults.Engines),
        };
        var command = new Command("cpu",
            "Generates (once, cached in bench/results/models) a random-weight Llama GGUF and measures one sequence's prefill and " +
            "greedy decode speed in Kiln's CPU runner and in llama.cpp (LLamaSharp), same weights and thread count.")
        {
            vocab, hidden, intermediate, layers, heads, kvHeads, type, quantize, tied, seed, model, prompt, decode, threads, runs, engines,
        };
        command.SetAction(result =>
        {
            var options = new BenchOptions
            {
                ModelPath = result.GetValue(model),
                Quantize = result.GetValue(quantize),
                Prompt = result.GetValue(prompt),
                Decode = result.GetValue(decode),
                Threads = result.GetValue(threads),
                Runs = result.GetValue(runs),
                Engines = result.GetValue(engines)!.Split(',', StringSplitOptions.RemoveEmptyEntries),
            };
            return run(options with
            {
                Model = m with
                {
                    VocabSize = result.GetValue(vocab),
                    Hidden = result.GetValue(hidden),
                    Intermediate = result.GetValue(intermediate),
                    Layers = result.GetValue(layers),
                    Heads = result.GetValue(heads),
                    KvHeads = result.GetValue(kvHeads),
                    Seed = (ulong)result.GetValue(seed),
                    TiedEmbeddings = result.GetValue(tied),
                    WeightType = result.GetValue(type),
                    ContextLength = Math.Max(m.ContextLength, options.Prompt + options.Decode),
                },
            });
        });
        return command;
    }

    private static LLamaFtype? ParseMix(ArgumentResult result)
    {
        string s = result.Tokens[0].Value;
        if (Enum.TryParse<LLamaFtype>("MOSTLY_" + s.ToUpperInvariant(), out var mix))
        {
            return mix;
        }

        result.AddError($"unknown quantization mix '{s}' (q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_m, q4_k_m, q5_k_m, q6_k, q8_0)");
        return null;
    }

    private static GgmlType ParseType(ArgumentResult result)
    {
        string s = result.Tokens[0].Value;
        switch (s.ToUpperInvariant())
        {
            case "F32": return GgmlType.F32;
            case "F16": return GgmlType.F16;
            case "BF16": return GgmlType.BF16;
            case "Q8_0" or "Q8": return GgmlType.Q8_0;
            default:
                result.AddError($"unknown weight type '{s}' (f32, f16, bf16, q8_0)");
                return default;
        }
    }
}
