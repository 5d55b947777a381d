using System.CommandLine;
using System.CommandLine.Help;
using System.Diagnostics;
using System.Globalization;
using Kiln.Bench;
using Kiln.Bench.Common;
using Kiln.Bench.Serving;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;

var root = new RootCommand(
    "Kiln's CPU benchmarks: 'cpu' against llama.cpp on one sequence, 'engine' a trace replay and a concurrency sweep. " +
    "Both write their tables to bench/results.")
{
    BenchOptions.CreateCommand(RunCpu),
    ServingBenchOptions.CreateCommand(options => ServingBench.RunAsync(options, ResultsDirectory())),
};
root.SetAction(result => new HelpAction().Invoke(result)); // no command: the help, as with --help
return await BenchCommandLine.InvokeAsync(root, args);

static int RunCpu(BenchOptions options)
{
    string results = ResultsDirectory();
    var c = CultureInfo.InvariantCulture;
    string model;
    string description;
    if (options.ModelPath is { } given)
    {
        model = given;
        description = Path.GetFileName(given);
    }
    else
    {
        var started = Stopwatch.GetTimestamp();
        model = RandomLlamaGguf.WriteCached(Path.Combine(results, "models"), options.Model);
        var m = options.Model;
        string storage = m.WeightType.ToString();
        if (options.Quantize is { } mix)
        {
            string quantized = Path.ChangeExtension(model, $"{mix}.gguf");
            if (!File.Exists(quantized))
            {
                LlamaCppSetup.Quantize(model, quantized + ".partial", mix, options.Threads);
                File.Move(quantized + ".partial", quantized);
            }

            model = quantized;
            storage = $"{mix.ToString().Replace("MOSTLY_", "", StringComparison.Ordinal)} by llama.cpp's quantizer from {m.WeightType}";
        }

        description = string.Create(c, $"random Llama, {m.ParameterCount / 1e6:F1}M parameters ({storage}), vocab {m.VocabSize}, hidden {m.Hidden}, " +
            $"intermediate {m.Intermediate}, {m.Layers} layers, {m.Heads} heads / {m.KvHeads} KV heads, {(m.TiedEmbeddings ? "tied" : "untied")} classifier");
        Console.WriteLine(string.Create(c, $"model {model} ready in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s"));
    }

    Console.WriteLine($"{description}; prompt {options.Prompt}, decode {options.Decode}, threads {options.Threads}");
    var random = new Random(1234);
    int vocab = options.ModelPath is null ? options.Model.VocabSize : VocabularySize(model);
    int lowest = Math.Min(SyntheticVocabulary.FirstByteToken + 256, vocab - 1); // past the specials and byte tokens
    int[] prompt = [SyntheticVocabulary.Bos, .. Enumerable.Range(1, options.Prompt - 1).Select(_ => random.Next(lowest, vocab))];
    int context = options.Prompt + options.Decode;
    List<EngineResult> measured;

    var engines = new List<IBenchEngine>();
    try
    {
        foreach (string name in options.Engines)
        {
            Console.WriteLine($"{name}: loading");
            engines.Add(name.ToUpperInvariant() switch
            {
                "KILN" => new KilnEngine(model, options.Threads, options.Prompt, context),
                "LLAMA.CPP" or "LLAMA" => new LlamaCppEngine(model, options.Threads, options.Prompt, context),
                _ => throw new ArgumentException($"unknown engine '{name}' (kiln, llama.cpp)"),
            });
        }

        measured = Measurement.Measure(engines, prompt, options.Decode, options.Runs);
    }
    finally
    {
        engines.ForEach(e => e.Dispose());
    }

    string markdown = Measurement.Markdown(options, description, measured);
    Console.WriteLine();
    Console.WriteLine(markdown);
    string report = Path.Combine(results, "cpu.md");
    File.WriteAllText(report, markdown);
    Console.WriteLine($"written to {report}");
    return 0;
}

static int VocabularySize(string path)
{
    using var file = GgufFile.Open(path);
    return file.TryGet<string[]>("tokenizer.ggml.tokens", out var tokens) ? tokens.Length : (int)file.Tensors["token_embd.weight"].Dimensions[^1];
}

static string ResultsDirectory()
{
    string results = Path.Combine(RepositoryRoot(), "bench", "results");
    Directory.CreateDirectory(results);
    return results;
}

static string RepositoryRoot()
{
    foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Functions.sln")))
            {
                return d.FullName;
            }
        }
    }

    return Environment.CurrentDirectory;
}
