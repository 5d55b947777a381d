using Grpc.Core;
using Grpc.Net.Client;
using Kiln.Scaler.Protocol;

namespace Kiln.LocalCluster;

/// <summary>
/// How fast the stand-in runs KEDA's and the HPA's loops. The ScaledObject's own numbers (pollingInterval 15 s,
/// cooldownPeriod 300 s) would make a loopback run take many minutes; the semantics stay the same at any pace.
/// </summary>
public sealed record KedaTiming
{
    public TimeSpan PollingInterval { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan CooldownPeriod { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>The HPA controller's sync period (kube-controller-manager --horizontal-pod-autoscaler-sync-period, 15 s).</summary>
    public TimeSpan HpaSyncPeriod { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>behavior.scaleDown.stabilizationWindowSeconds (the HPA's default is 300 s).</summary>
    public TimeSpan ScaleDownStabilization { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>The period of the HPA's default scale-up policies (100% or 4 pods per 15 s).</summary>
    public TimeSpan ScaleUpPolicyPeriod { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// A stand-in for KEDA's operator and the HPA it creates, for one ScaledObject with one external(-push) trigger,
/// following their documented behaviour:
/// <list type="bullet">
/// <item>Trigger metadata: every key ending in <c>FromEnv</c> is resolved against the scale target's container
/// environment and sent as the variable's value under the same key, dropped when unset or empty (kedacore/keda
/// <c>pkg/scalers/external_scaler.go</c> <c>parseExternalScalerMetadata</c>; ../shared/docs/keda-external-scaler.md).</item>
/// <item>Each pollingInterval: GetMetrics, then IsActive. Active at 0 replicas scales to max(minReplicaCount, 1);
/// inactive for cooldownPeriod since the last active report scales to minReplicaCount, from any N
/// (https://keda.sh/docs/2.20/concepts/scaling-deployments/, "activation" and "cooldownPeriod").</item>
/// <item>external-push: a StreamIsActive stream; only <c>true</c> acts (an immediate scale from zero); a broken
/// stream reconnects after 2 s, doubling to 1 min.</item>
/// <item>The HPA from 1 to N on the AverageValue metric: desired = ceil(metric / target) unless the ratio
/// metric / (target x current) is within 0.1 of 1; scale-up limited per period to max(2 x current, current + 4);
/// scale-down to the highest recommendation within the stabilization window
/// (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details, #default-behavior).</item>
/// <item>Fallback: after failureThreshold consecutive failed GetMetrics the replicas follow fallback.behavior
/// (static, currentReplicas, currentReplicasIfHigher, currentReplicasIfLower) and the object counts as active;
/// without a fallback, replicas stay where they are (https://keda.sh/docs/2.20/reference/scaledobject-spec/#fallback).</item>
/// </list>
/// </summary>
public sealed class LocalKeda : IAsyncDisposable
{
    private readonly ScaledObjectManifest _so;
    private readonly LocalKubernetes _kube;
    private readonly KedaTiming _timing;
    private readonly ClusterEvents _events;
    private readonly TimeProvider _time;
    private readonly GrpcChannel _channel;
    private readonly ExternalScaler.ExternalScalerClient _client;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(DateTimeOffset At, int Desired)> _recommendations = [];
    private readonly object _gate = new();
    private readonly List<Task> _loops = [];
    private DateTimeOffset _lastActive = DateTimeOffset.MinValue;
    private DateTimeOffset _lastScaleUp = DateTimeOffset.MinValue;
    private int _failures;
    private string _metricName = "";
    private double _targetPerReplica;

    public LocalKeda(ScaledObjectManifest so, Uri scalerAddress, LocalKubernetes kube, LocalDeployment target, KedaTiming timing, ClusterEvents events, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(so);
        ArgumentNullException.ThrowIfNull(target);
        _so = so;
        _kube = kube;
        _timing = timing;
        _events = events;
        _time = time;
        _channel = GrpcChannel.ForAddress(scalerAddress);
        _client = new ExternalScaler.ExternalScalerClient(_channel);
        Ref = new ScaledObjectRef { Name = so.Metadata.Name, Namespace = so.Metadata.NamespaceProperty ?? "" };
        Ref.ScalerMetadata.Add(ResolveFromEnv(Trigger.Metadata, target.Environment));
    }

    /// <summary>What KEDA sends the scaler: the trigger's metadata with FromEnv keys resolved.</summary>
    public ScaledObjectRef Ref { get; }

    /// <summary>The last metric GetMetrics answered.</summary>
    public double LastMetric { get; private set; }

    private TriggerSpec Trigger => _so.Spec.Triggers.Single();

    private int MinReplicas => _so.Spec.MinReplicaCount ?? 0;

    private int MaxReplicas => _so.Spec.MaxReplicaCount ?? 100;

    /// <summary>KEDA's resolution of <c>*FromEnv</c> keys against the scale target's environment.</summary>
    public static Dictionary<string, string> ResolveFromEnv(IReadOnlyDictionary<string, string> metadata, IReadOnlyDictionary<string, string> targetEnvironment)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(targetEnvironment);
        var sent = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata)
        {
            if (!key.EndsWith("FromEnv", StringComparison.Ordinal))
            {
                sent[key] = value;
            }
            else if (targetEnvironment.TryGetValue(value, out var resolved) && !string.IsNullOrEmpty(resolved))
            {
                sent[key] = resolved;
            }
        }

        return sent;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var spec = (await _client.GetMetricSpecAsync(Ref, cancellationToken: cancellationToken)).MetricSpecs.Single();
        _metricName = spec.MetricName;
#pragma warning disable CS0612 // KEDA reads the float field when > 0, else the deprecated int64 one
        _targetPerReplica = spec.TargetSizeFloat > 0 ? spec.TargetSizeFloat : spec.TargetSize;
#pragma warning restore CS0612
        var ct = _stop.Token;
        _loops.Add(Task.Run(() => PollLoopAsync(ct), CancellationToken.None));
        _loops.Add(Task.Run(() => HpaLoopAsync(ct), CancellationToken.None));
        if (Trigger.Type == "external-push")
        {
            _loops.Add(Task.Run(() => PushLoopAsync(ct), CancellationToken.None));
        }
    }

    private bool InFallback => _so.Spec.Fallback is { } f && f.FailureThreshold > 0 && _failures >= f.FailureThreshold;

    private async Task PollLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var active = false;
            try
            {
                await ReadMetricAsync(ct);
                active = (await _client.IsActiveAsync(Ref, cancellationToken: ct)).Result;
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                _events.Add("keda-error", $"{e.StatusCode}: {e.Status.Detail}");
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException && ct.IsCancellationRequested)
            {
                break;
            }

            var now = _time.GetUtcNow();
            if (InFallback)
            {
                ApplyFallback();
                active = true; // a failing scaler must not scale the target to zero
            }

            if (active)
            {
                Activate(now, "IsActive");
            }
            else if (_kube.Replicas > MinReplicas && now - _lastActive >= _timing.CooldownPeriod)
            {
                _kube.Scale(MinReplicas, $"KEDA: inactive for the {_timing.CooldownPeriod.TotalSeconds:F0} s cooldown");
            }

            if (!await DelayAsync(_timing.PollingInterval, ct))
            {
                break;
            }
        }
    }

    private async Task PushLoopAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromSeconds(2);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var stream = _client.StreamIsActive(Ref, cancellationToken: ct);
                await foreach (var message in stream.ResponseStream.ReadAllAsync(ct))
                {
                    backoff = TimeSpan.FromSeconds(2);
                    if (message.Result)
                    {
                        Activate(_time.GetUtcNow(), "StreamIsActive");
                    }
                }
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                _events.Add("keda-stream", $"{e.StatusCode}; reconnecting in {backoff.TotalSeconds:F0} s");
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException && ct.IsCancellationRequested)
            {
                break;
            }

            if (!await DelayAsync(backoff, ct))
            {
                break;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromMinutes(1).Ticks));
        }
    }

    private void Activate(DateTimeOffset now, string by)
    {
        lock (_gate)
        {
            _lastActive = now;
            if (_kube.Replicas == 0)
            {
                _kube.Scale(Math.Max(MinReplicas, 1), $"KEDA: activated by {by}");
            }
        }
    }

    private async Task HpaLoopAsync(CancellationToken ct)
    {
        while (await DelayAsync(_timing.HpaSyncPeriod, ct))
        {
            var current = _kube.Replicas;
            if (current == 0 || InFallback)
            {
                continue; // the HPA does not act on a target scaled to zero; fallback overrides it
            }

            double metric;
            try
            {
                metric = await ReadMetricAsync(ct);
            }
            catch (RpcException)
            {
                continue;
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var desired = Desired(metric, current);
            if (desired != current)
            {
                _kube.Scale(desired, $"HPA: metric {metric:F0} / target {_targetPerReplica:F0} over {current}");
            }
        }
    }

    /// <summary>One HPA reconciliation: the AverageValue formula, tolerance, bounds, scale-up policy, stabilization.</summary>
    private int Desired(double metric, int current)
    {
        const double Tolerance = 0.1;
        var ratio = metric / (_targetPerReplica * current);
        var raw = Math.Abs(ratio - 1) <= Tolerance ? current : (int)Math.Ceiling(metric / _targetPerReplica);
        raw = Math.Clamp(raw, Math.Max(MinReplicas, 1), MaxReplicas);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            _recommendations.Add((now, raw));
            _recommendations.RemoveAll(r => now - r.At > _timing.ScaleDownStabilization);
            if (raw > current)
            {
                if (now - _lastScaleUp < _timing.ScaleUpPolicyPeriod)
                {
                    return current;
                }

                _lastScaleUp = now;
                return Math.Min(raw, Math.Max(current * 2, current + 4));
            }

            // Scale down only to the highest recommendation of the window.
            return Math.Min(current, _recommendations.Max(r => r.Desired));
        }
    }

    private async Task<double> ReadMetricAsync(CancellationToken ct)
    {
        try
        {
            var response = await _client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = Ref, MetricName = _metricName }, cancellationToken: ct);
            var value = response.MetricValues.Single();
#pragma warning disable CS0612
            var metric = value.MetricValueFloat > 0 ? value.MetricValueFloat : value.MetricValue_;
#pragma warning restore CS0612
            _failures = 0;
            LastMetric = double.IsFinite(metric) && metric > 0 ? metric : 0;
            return LastMetric;
        }
        catch (RpcException)
        {
            _failures++;
            throw;
        }
    }

    private void ApplyFallback()
    {
        var f = _so.Spec.Fallback!;
        var current = _kube.Replicas;
        var replicas = f.Behavior switch
        {
            "currentReplicas" => current,
            "currentReplicasIfHigher" => Math.Max(current, f.Replicas),
            "currentReplicasIfLower" => Math.Min(current, f.Replicas),
            _ => f.Replicas,
        };
        _kube.Scale(replicas, $"KEDA fallback ({f.Behavior ?? "static"}) after {_failures} failures");
    }

    private async Task<bool> DelayAsync(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, _time, ct);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
        _channel.Dispose();
        _stop.Dispose();
    }
}
