using System.Collections.Concurrent;
using Kiln.Scaler.Contracts;

namespace Kiln.Scaler.Sources;

/// <summary>The calls the gateways hold for one ScaledObject, summed over the replicas whose reports are current.</summary>
public readonly record struct HeldCalls(int Requests, double Tokens);

/// <summary>
/// The gateways' reports (<see cref="GatewayReport"/>), pushed to the scaler's HTTP port: at zero replicas the calls a
/// gateway holds are the only sign of demand, and nothing in the cluster can be polled for them. Each report counts
/// for <see cref="GatewayReportPath.Ttl"/>; a report that starts holding wakes the object's StreamIsActive streams
/// so that KEDA hears <c>true</c> at once instead of at the next poll.
/// </summary>
public sealed class GatewayReports(TimeProvider time)
{
    /// <summary>Gateway replicas remembered per object: a bound, since anyone inside the cluster can report.</summary>
    public const int MaxGatewaysPerObject = 64;

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, (GatewayReport Report, DateTimeOffset At)>> _byObject = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _wakes = new(StringComparer.Ordinal);

    /// <summary>Records one gateway's report for the object <c>namespace/name</c>; false when the bound is reached.</summary>
    public bool Record(string objectKey, string gatewayId, GatewayReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var now = time.GetUtcNow();
        var gateways = _byObject.GetOrAdd(objectKey, _ => new ConcurrentDictionary<string, (GatewayReport, DateTimeOffset)>(StringComparer.Ordinal));
        Prune(gateways, now);
        if (!gateways.ContainsKey(gatewayId) && gateways.Count >= MaxGatewaysPerObject)
        {
            return false;
        }

        var heldBefore = Sum(gateways, now).Requests;
        gateways[gatewayId] = (report, now);
        if (heldBefore == 0 && report.HeldRequests > 0 && _wakes.TryRemove(objectKey, out var wake))
        {
            wake.TrySetResult();
        }

        return true;
    }

    /// <summary>What the current reports hold for the object.</summary>
    public HeldCalls HeldFor(string objectKey) =>
        _byObject.TryGetValue(objectKey, out var gateways) ? Sum(gateways, time.GetUtcNow()) : default;

    /// <summary>Completes when a gateway starts holding calls for the object (a stream then re-evaluates at once).</summary>
    public Task HoldingStarted(string objectKey) =>
        _wakes.GetOrAdd(objectKey, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private HeldCalls Sum(ConcurrentDictionary<string, (GatewayReport Report, DateTimeOffset At)> gateways, DateTimeOffset now)
    {
        var requests = 0;
        double tokens = 0;
        foreach (var (_, (report, at)) in gateways)
        {
            if (now - at <= GatewayReportPath.Ttl)
            {
                requests += report.HeldRequests;
                tokens += report.HeldTokens;
            }
        }

        return new HeldCalls(requests, tokens);
    }

    private static void Prune(ConcurrentDictionary<string, (GatewayReport Report, DateTimeOffset At)> gateways, DateTimeOffset now)
    {
        foreach (var (id, (_, at)) in gateways)
        {
            if (now - at > GatewayReportPath.Ttl)
            {
                gateways.TryRemove(id, out _);
            }
        }
    }
}
