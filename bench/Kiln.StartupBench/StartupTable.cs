using System.Globalization;
using System.Text;

namespace Kiln.StartupBench;

/// <summary>The runs of every model as a Markdown table: median, with min-max, of each figure.</summary>
internal static class StartupTable
{
    public static string Format(IReadOnlyList<(string Model, IReadOnlyList<StartupSample> Runs)> results)
    {
        var s = new StringBuilder();
        s.AppendLine("| model | runs | host answers s | load begins s | load done s | ready s | first token s | CPU s at ready | CPU s at first token | RSS at ready MB | RSS after call MB |");
        s.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (model, runs) in results)
        {
            s.Append(CultureInfo.InvariantCulture, $"| {model} | {runs.Count} | ")
                .Append(Seconds(runs.Select(r => r.FirstAnswer))).Append(" | ")
                .Append(Seconds(runs.Where(r => r.LoadBegun is not null).Select(r => r.LoadBegun!.Value))).Append(" | ")
                .Append(Seconds(runs.Where(r => r.LoadDone is not null).Select(r => r.LoadDone!.Value))).Append(" | ")
                .Append(Seconds(runs.Select(r => r.Ready))).Append(" | ")
                .Append(Seconds(runs.Select(r => r.FirstToken))).Append(" | ")
                .Append(runs.Any(r => r.CpuAtReady < 0) ? "-" : Seconds(runs.Select(r => r.CpuAtReady))).Append(" | ")
                .Append(runs.Any(r => r.CpuAtFirstToken < 0) ? "-" : Seconds(runs.Select(r => r.CpuAtFirstToken))).Append(" | ")
                .Append(Megabytes(runs.Select(r => r.ResidentAtReady))).Append(" | ")
                .Append(Megabytes(runs.Select(r => r.ResidentAfterCall))).AppendLine(" |");
        }

        return s.ToString();
    }

    private static string Seconds(IEnumerable<double> values) => Range(values.ToList(), v => v.ToString("F2", CultureInfo.InvariantCulture));

    private static string Megabytes(IEnumerable<long> values) =>
        values.Any(v => v < 0) ? "-" : Range(values.Select(v => v / 1e6).ToList(), v => v.ToString("F0", CultureInfo.InvariantCulture));

    /// <summary>"median (min-max)", or "-" when no run gave the figure.</summary>
    private static string Range(List<double> values, Func<double, string> format)
    {
        if (values.Count == 0)
        {
            return "-";
        }

        values.Sort();
        int n = values.Count;
        double median = n % 2 == 1 ? values[n / 2] : (values[(n / 2) - 1] + values[n / 2]) / 2;
        return $"{format(median)} ({format(values[0])}-{format(values[^1])})";
    }
}
