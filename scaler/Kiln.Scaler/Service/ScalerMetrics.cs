using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Kiln.Scaler.Scaling;

namespace Kiln.Scaler.Service;

/// <summary>
/// The scaler's own gauges, per ScaledObject, in Prometheus text format on /metrics: the metric served, the backlog
/// behind it, wanted and allowed replicas, and <c>kiln_scaler_capacity_exhausted</c> (1 while the metric is capped
/// because no free TP group is left).
/// </summary>
public sealed class ScalerMetrics
{
    private readonly ConcurrentDictionary<string, ScalingDecision> _last = new(StringComparer.Ordinal);
    private long _cappedTotal;

    public void Record(string scaledObject, in ScalingDecision decision)
    {
        _last[scaledObject] = decision;
        if (decision.Capped)
        {
            Interlocked.Increment(ref _cappedTotal);
        }
    }

    public bool TryGet(string scaledObject, out ScalingDecision decision) => _last.TryGetValue(scaledObject, out decision);

    public string Render()
    {
        var sb = new StringBuilder();
        Gauge(sb, "kiln_scaler_token_backlog", "Queue plus pod token backlog.", d => d.Backlog);
        Gauge(sb, "kiln_scaler_metric_value", "The metric served to KEDA (the backlog, capped).", d => d.Metric);
        Gauge(sb, "kiln_scaler_wanted_replicas", "ceil(backlog / target).", d => d.WantedReplicas);
        Gauge(sb, "kiln_scaler_allowed_replicas", "Current replicas plus free TP groups.", d => d.AllowedReplicas);
        Gauge(sb, "kiln_scaler_capacity_exhausted", "1 while the metric is capped for lack of free TP groups.", d => d.Capped ? 1 : 0);
        Gauge(sb, "kiln_scaler_active", "1 while the ScaledObject is active.", d => d.Active ? 1 : 0);
        sb.Append("# HELP kiln_scaler_capped_total Evaluations whose metric was capped.\n# TYPE kiln_scaler_capped_total counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"kiln_scaler_capped_total {Interlocked.Read(ref _cappedTotal)}\n");
        return sb.ToString();
    }

    private void Gauge(StringBuilder sb, string name, string help, Func<ScalingDecision, double> value)
    {
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n");
        foreach (var (key, d) in _last.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var label = key.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
            sb.Append(CultureInfo.InvariantCulture, $"{name}{{scaledobject=\"{label}\"}} {value(d)}\n");
        }
    }
}
