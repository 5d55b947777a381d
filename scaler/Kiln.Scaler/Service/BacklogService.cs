using Kiln.Scaler.Contracts;
using Kiln.Scaler.Scaling;
using Kiln.Scaler.Sources;
using Microsoft.Extensions.Options;

namespace Kiln.Scaler.Service;

/// <summary>One evaluation of one ScaledObject: the decision and the readings behind it.</summary>
public sealed record Evaluation(ScalingDecision Decision, QueueSample Queue, HeldCalls Held, int Pods, int PodsReporting, int FreeGroups);

/// <summary>
/// Gathers the readings of one ScaledObject (queue, cluster, its pods' stats, each through the resilient cache; the
/// calls its gateways hold, from their reports) and hands them to <see cref="ScalingMath.Decide"/>.
/// </summary>
public sealed partial class BacklogService(
    IQueueSource queues, IClusterSource cluster, IPodStatsSource podStats, GatewayReports gateways, ResilientCache cache, ScalerMetrics metrics,
    IOptions<ScalerOptions> options, TimeProvider time, ILogger<BacklogService> log)
{
    private readonly ScalerOptions _o = options.Value;

    // Whether each object was capped at its last evaluation: the capacity warning is logged when that changes.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _capped = new(StringComparer.Ordinal);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (ScalerMetadata Md, DateTimeOffset Seen)> _polled = new(StringComparer.Ordinal);

    /// <summary>
    /// KEDA's polls (GetMetrics, IsActive): served from readings up to PollMaxAgeMs old, which the background refresh
    /// keeps young, so a poll costs no outbound call; the object is remembered for that refresh.
    /// </summary>
    public Task<Evaluation> PollAsync(ScalerMetadata md, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(md);
        if (_o.BackgroundRefreshMs > 0)
        {
            _polled[md.Key] = (md, time.GetUtcNow());
        }

        return EvaluateAsync(md, TimeSpan.FromMilliseconds(_o.PollMaxAgeMs), cancellationToken);
    }

    /// <summary>The objects polled recently (forgotten after ten minutes without a poll: the ScaledObject is gone).</summary>
    public IReadOnlyList<ScalerMetadata> RecentlyPolled()
    {
        var cutoff = time.GetUtcNow().AddMinutes(-10);
        foreach (var (key, v) in _polled)
        {
            if (v.Seen < cutoff)
            {
                _polled.TryRemove(key, out _);
            }
        }

        return [.. _polled.Values.Select(v => v.Md)];
    }

    public Task<Evaluation> EvaluateAsync(ScalerMetadata md, CancellationToken cancellationToken) =>
        EvaluateAsync(md, TimeSpan.FromMilliseconds(_o.RefreshIntervalMs), cancellationToken);

    public async Task<Evaluation> EvaluateAsync(ScalerMetadata md, TimeSpan refresh, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(md);
        var staleness = TimeSpan.FromSeconds(md.StalenessSeconds);
        var timeout = _o.OutboundTimeout;

        var queueTask = cache.GetAsync(
            md.QueueSource, ct => queues.ReadAsync(md.ConnectionString, md.QueueName, md.DefaultMaxTokens, ct),
            refresh, staleness, timeout, cancellationToken);
        var clusterTask = cache.GetAsync(
            "cluster", cluster.ReadAsync, TimeSpan.FromMilliseconds(Math.Max(_o.ClusterRefreshMs, refresh.TotalMilliseconds)), staleness, timeout, cancellationToken,
            keepFor: TimeSpan.FromSeconds(Math.Max(_o.MaxStalenessSeconds, md.StalenessSeconds)));
        await Task.WhenAll(queueTask, clusterTask);
        var snapshot = await clusterTask;

        var pods = snapshot.PodsOf(md.PodNamespace, md.PodSelector).ToList();
        var reporting = pods.Where(p => p.Phase == "Running" && p.Ready && p.PodIp is not null).ToList();
        var stats = await Task.WhenAll(reporting.Select(p => ReadPodAsync(p, md, refresh, staleness, timeout, cancellationToken)));
        var queue = await queueTask;

        double podTokens = 0;
        var running = 0;
        foreach (var s in stats)
        {
            podTokens += s?.Backlog ?? 0;
            // A pod whose stats are unknown may be busy: count it as running so it is not scaled away blind.
            running += s?.RunningSequences ?? 1;
        }

        var freeGroups = snapshot.FreeGroups(md.GpuResourceName, md.TpSize);
        var held = gateways.HeldFor(md.Key);
        var decision = ScalingMath.Decide(new ScalingInputs(
            queue.Tokens, podTokens, running, pods.Count, freeGroups, md.TargetBacklogPerReplica, md.ActivationThreshold, held.Tokens, held.Requests));
        metrics.Record(md.Key, decision);
        if (_capped.TryGetValue(md.Key, out var wasCapped) ? wasCapped != decision.Capped : decision.Capped)
        {
            _capped[md.Key] = decision.Capped;
            if (decision.Capped)
            {
                LogCapped(log, md.Key, decision.WantedReplicas, decision.AllowedReplicas, pods.Count, freeGroups, md.TpSize, md.GpuResourceName);
            }
            else
            {
                LogUncapped(log, md.Key, decision.WantedReplicas, decision.AllowedReplicas);
            }
        }

        return new Evaluation(decision, queue, held, pods.Count, reporting.Count, freeGroups);
    }

    private async Task<PodStatsDocument?> ReadPodAsync(
        PodInfo pod, ScalerMetadata md, TimeSpan refresh, TimeSpan staleness, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            return await cache.GetAsync(
                $"pod:{pod.PodIp}:{md.PodStatsPort}{md.PodStatsPath}", c => podStats.ReadAsync(pod.PodIp!, md.PodStatsPort, md.PodStatsPath, c),
                refresh, staleness, timeout, ct);
        }
        catch (SourceUnavailableException e)
        {
            // One silent pod must not blind the whole ScaledObject; its queue work is still counted.
            LogPodUnknown(log, md.Key, pod.Name, e.InnerException?.Message ?? e.Message);
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{ScaledObject}: capacity exhausted: backlog wants {Wanted} replicas, capped at {Allowed} ({Current} current + {Free} free groups of {TpSize} x {Resource})")]
    private static partial void LogCapped(ILogger logger, string scaledObject, int wanted, int allowed, int current, int free, int tpSize, string resource);

    [LoggerMessage(Level = LogLevel.Information, Message = "{ScaledObject}: capacity suffices again: backlog wants {Wanted} replicas, {Allowed} allowed")]
    private static partial void LogUncapped(ILogger logger, string scaledObject, int wanted, int allowed);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{ScaledObject}: stats of pod {Pod} unavailable ({Error}); counted as busy with no backlog")]
    private static partial void LogPodUnknown(ILogger logger, string scaledObject, string pod, string error);
}
