using System.Globalization;
using System.Text;

namespace Kiln.Bench.Serving;

/// <summary>When a request was submitted, got its first token and finished (seconds on the run's clock).</summary>
internal sealed record RequestTiming(double Submitted, double FirstToken, double Done, int PromptTokens, int OutputTokens)
{
    public double TimeToFirstToken => FirstToken - Submitted;

    public double TimePerOutputToken => OutputTokens > 1 ? (Done - FirstToken) / (OutputTokens - 1) : 0;
}

/// <summary>The figures of one trace replay.</summary>
internal sealed record ReplayResult(RequestTiming[] Requests, double Makespan, int PeakBlocksUsed, int BlocksTotal, double PrefixHitRate, long Preemptions)
{
    public string ToMarkdown()
    {
        var c = CultureInfo.InvariantCulture;
        var ttft = Requests.Select(r => r.TimeToFirstToken * 1000).Order().ToArray();
        var tpot = Requests.Where(r => r.OutputTokens > 1).Select(r => r.TimePerOutputToken * 1000).Order().ToArray();
        long output = Requests.Sum(r => (long)r.OutputTokens);
        long prompt = Requests.Sum(r => (long)r.PromptTokens);
        var sb = new StringBuilder();
        sb.AppendLine("| metric | value |");
        sb.AppendLine("| --- | ---: |");
        sb.AppendLine(c, $"| requests | {Requests.Length} |");
        sb.AppendLine(c, $"| makespan (s) | {Makespan:F1} |");
        sb.AppendLine(c, $"| throughput: requests/s | {Requests.Length / Makespan:F2} |");
        sb.AppendLine(c, $"| throughput: output tok/s | {output / Makespan:F1} |");
        sb.AppendLine(c, $"| throughput: prompt + output tok/s | {(prompt + output) / Makespan:F1} |");
        sb.AppendLine(c, $"| time to first token p50 / p95 (ms) | {Percentile(ttft, 0.5):F0} / {Percentile(ttft, 0.95):F0} |");
        sb.AppendLine(c, $"| time per output token p50 / p95 (ms) | {Percentile(tpot, 0.5):F1} / {Percentile(tpot, 0.95):F1} |");
        sb.AppendLine(c, $"| peak KV blocks used | {PeakBlocksUsed} of {BlocksTotal} ({100.0 * PeakBlocksUsed / BlocksTotal:F1}%) |");
        sb.AppendLine(c, $"| prefix cache hit rate (blocks) | {PrefixHitRate:P1} |");
        sb.AppendLine(c, $"| preemptions | {Preemptions} |");
        return sb.ToString();
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(p * sorted.Length))];
}
