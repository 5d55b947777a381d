using System.Diagnostics;
using System.Globalization;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Synthetic;

namespace Kiln.StartupBench;

/// <summary>
/// The 1B model of the bench: TinyLlama-1.1B's shape (hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate
/// 5632, vocabulary 32,000, context 2048, untied classifier) with random F16 weights, 1.1B parameters, 2.2 GB.
/// </summary>
internal static class LargeModel
{
    public static RandomLlamaOptions Shape { get; } = new()
    {
        VocabSize = 32000,
        Hidden = 2048,
        Intermediate = 5632,
        Layers = 22,
        Heads = 32,
        KvHeads = 4,
        ContextLength = 2048,
        WeightType = GgmlType.F16,
        Seed = 1,
        Name = "kiln-startup-1b",
    };

    public static string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Shape.ParameterCount / 1e9:F2}B parameters F16: hidden {Shape.Hidden}, {Shape.Layers} layers, {Shape.Heads} heads / {Shape.KvHeads} KV heads, " +
        $"intermediate {Shape.Intermediate}, vocabulary {Shape.VocabSize}, context {Shape.ContextLength}");

    /// <summary>Writes the file once into <paramref name="cache"/>, then reads it whole so every run finds it in the page cache.</summary>
    public static string Prepare(string cache)
    {
        var started = Stopwatch.StartNew();
        string path = RandomLlamaGguf.WriteCached(cache, Shape);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"1b model: {path} ({new FileInfo(path).Length / 1e9:F2} GB) ready in {started.Elapsed.TotalSeconds:F1} s"));

        started.Restart();
        var buffer = new byte[1 << 22];
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
        {
            while (file.Read(buffer) > 0)
            {
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"1b model read into the page cache in {started.Elapsed.TotalSeconds:F1} s"));
        return path;
    }
}
