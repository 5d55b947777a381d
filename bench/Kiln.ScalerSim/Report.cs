using System.Globalization;
using System.Text;

namespace Kiln.ScalerSim;

/// <summary>The results as a markdown table and a PNG of replicas over time per policy.</summary>
public static class Report
{
    public static string Markdown(SimOptions o, string command, int requests, double span, IReadOnlyList<SimResult> results)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(ci, $"# Scaler simulation: {Path.GetFileName(o.Trace)}");
        sb.AppendLine();
        sb.AppendLine(ci, $"`{command}`");
        sb.AppendLine();
        sb.AppendLine(ci, $"{requests} requests over {span / 60:F1} min. Replica: {o.TpSize} GPUs, {o.Throughput} tokens/s, {o.MaxSeqs} sequences, cold start {o.ColdStart} s; {o.Groups} TP groups. KEDA/HPA: poll {o.Poll} s, cooldown {o.Cooldown} s, tolerance {o.Tolerance}, scale-down stabilization {o.Stabilization} s. Kiln target {o.Target} tokens/replica.");
        sb.AppendLine();
        sb.AppendLine("| policy | GPU-hours | p50 wait (s) | p95 wait (s) | max wait (s) | scale events | time at zero (s) | peak replicas (incl. Pending) | unfinished |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            sb.AppendLine(ci, $"| {r.Policy} | {r.GpuSeconds / 3600:F2} | {r.P50Wait:F2} | {r.P95Wait:F2} | {r.MaxWait:F1} | {r.ScaleEvents} | {r.ZeroSeconds:F0} | {r.PeakReplicas} | {r.Unfinished} |");
        }

        return sb.ToString();
    }

    public static void Plot(string path, IReadOnlyList<SimResult> results)
    {
        var plot = new ScottPlot.Plot();
        foreach (var r in results)
        {
            // Step lines: hold each value until the next change.
            var xs = new List<double>();
            var ys = new List<double>();
            for (var i = 0; i < r.Timeline.Count; i++)
            {
                if (i > 0)
                {
                    xs.Add(r.Timeline[i].Time / 60);
                    ys.Add(r.Timeline[i - 1].Replicas);
                }

                xs.Add(r.Timeline[i].Time / 60);
                ys.Add(r.Timeline[i].Replicas);
            }

            var line = plot.Add.ScatterLine(xs.ToArray(), ys.ToArray());
            line.LegendText = r.Policy;
            line.LineWidth = 2;
        }

        plot.Title("Replicas over time");
        plot.XLabel("minutes");
        plot.YLabel("replicas (desired)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(path, 1200, 600);
    }
}
