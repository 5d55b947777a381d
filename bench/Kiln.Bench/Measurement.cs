using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Kiln.Bench;

/// <summary>Throughputs of one engine over the measured runs: the best (least disturbed by other load) and the median.</summary>
internal sealed record EngineResult(string Engine, double PrefillBest, double PrefillMedian, double DecodeBest, double DecodeMedian, int[] Tokens);

internal static class Measurement
{
    /// <summary>
    /// One warm-up run each, then <paramref name="runs"/> rounds in which every engine does prefill + <paramref name="decode"/>
    /// greedy steps in turn: alternating keeps a changing machine load from favouring one engine.
    /// </summary>
    public static List<EngineResult> Measure(IReadOnlyList<IBenchEngine> engines, int[] prompt, int decode, int runs)
    {
        foreach (var engine in engines)
        {
            _ = Run(engine, prompt, decode);
        }

        var prefill = engines.Select(_ => new List<double>()).ToArray();
        var steps = engines.Select(_ => new List<double>()).ToArray();
        var tokens = new int[engines.Count][];
        for (int r = 0; r < runs; r++)
        {
            for (int e = 0; e < engines.Count; e++)
            {
                (double p, double d, tokens[e]) = Run(engines[e], prompt, decode);
                prefill[e].Add(prompt.Length / p);
                steps[e].Add(decode / d);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  run {r + 1} {engines[e].Name,-9}: prefill {prompt.Length / p,8:F1} tok/s, decode {decode / d,7:F2} tok/s"));
            }
        }

        return [.. engines.Select((engine, e) => new EngineResult(engine.Name, prefill[e].Max(), Median(prefill[e]), steps[e].Max(), Median(steps[e]), tokens[e]))];
    }

    /// <summary>Seconds of prefill, seconds of the decode steps, and the greedy tokens (the prefill's then each step's).</summary>
    private static (double Prefill, double Decode, int[] Tokens) Run(IBenchEngine engine, int[] prompt, int decode)
    {
        var tokens = new int[decode + 1];
        long start = Stopwatch.GetTimestamp();
        tokens[0] = engine.Prefill(prompt);
        double prefill = Stopwatch.GetElapsedTime(start).TotalSeconds;
        start = Stopwatch.GetTimestamp();
        for (int i = 0; i < decode; i++)
        {
            tokens[i + 1] = engine.Decode(tokens[i], prompt.Length + i);
        }

        return (prefill, Stopwatch.GetElapsedTime(start).TotalSeconds, tokens);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        int n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[(n / 2) - 1] + values[n / 2]) / 2;
    }

    public static string Markdown(BenchOptions options, string modelDescription, IReadOnlyList<EngineResult> results)
    {
        var c = CultureInfo.InvariantCulture;
        var baseline = results.FirstOrDefault(r => r.Engine == "llama.cpp");
        var md = new StringBuilder();
        md.AppendLine("# CPU benchmark: Kiln vs llama.cpp");
        md.AppendLine();
        md.AppendLine(c, $"- model: {modelDescription}");
        md.AppendLine(c, $"- one sequence, prompt {options.Prompt} tokens (one prefill step), then {options.Decode} greedy decode steps");
        md.AppendLine(c, $"- threads: {options.Threads} (of {Environment.ProcessorCount} logical processors); CPU: {CpuName()}; {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
        md.AppendLine(c, $"- load average (1, 5, 15 min) when the report was written: {LoadAverage()}; other processes' load skews both engines, llama.cpp's spinning threads most");
        md.AppendLine(c, $"- {options.Runs} measured runs after one warm-up run each, the engines taking turns; best and median of the runs; ratios of the best; llama.cpp = LLamaSharp 0.30.0 CPU backend, float32 KV cache, no flash attention");
        md.AppendLine(c, $"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        md.AppendLine();
        md.AppendLine("| engine | prefill tok/s best | median | decode tok/s best | median | prefill Kiln/llama.cpp | decode Kiln/llama.cpp |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            string Ratio(double kiln, double llama) => r.Engine == "Kiln" && baseline is not null ? (kiln / llama).ToString("F2", c) : "";
            md.AppendLine(c, $"| {r.Engine} | {r.PrefillBest:F1} | {r.PrefillMedian:F1} | {r.DecodeBest:F2} | {r.DecodeMedian:F2} | " +
                $"{Ratio(r.PrefillBest, baseline?.PrefillBest ?? 0)} | {Ratio(r.DecodeBest, baseline?.DecodeBest ?? 0)} |");
        }

        if (results.Count == 2)
        {
            int same = results[0].Tokens.Zip(results[1].Tokens).TakeWhile(p => p.First == p.Second).Count();
            md.AppendLine();
            md.AppendLine(c, $"Greedy tokens identical for the first {same} of {results[0].Tokens.Length} (random weights: near-ties may legitimately split them).");
        }

        return md.ToString();
    }

    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static string CpuName()
    {
        try
        {
            string? line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
            return line is null ? "unknown" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
