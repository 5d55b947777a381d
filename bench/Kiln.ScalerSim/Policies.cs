using Kiln.Scaler.Scaling;

namespace Kiln.ScalerSim;

/// <summary>What a KEDA trigger sees at a poll: the cluster's queue and pods, as the scaler would read them.</summary>
public readonly record struct Observation(
    double QueueTokens, int QueueRequests, double PodTokens, int RunningSequences, int CurrentReplicas, int FreeGroups);

/// <summary>A KEDA trigger: the metric (AverageValue against Target) and IsActive.</summary>
public interface IScalingPolicy
{
    string Name { get; }
    double Target { get; }
    bool PushActivation { get; }
    (double Metric, bool Active) Evaluate(in Observation x);
}

/// <summary>Kiln's external scaler: exactly its decision code (token backlog, TP-group cap, activation).</summary>
public sealed class KilnPolicy(SimOptions o) : IScalingPolicy
{
    public string Name => o.Push ? "kiln token backlog (external-push)" : "kiln token backlog (external)";
    public double Target => o.Target;
    public bool PushActivation => o.Push;

    public (double, bool) Evaluate(in Observation x)
    {
        var d = ScalingMath.Decide(new ScalingInputs(x.QueueTokens, x.PodTokens, x.RunningSequences, x.CurrentReplicas, x.FreeGroups, o.Target, o.Activation));
        return (d.Metric, d.Active);
    }
}

/// <summary>
/// The baseline: KEDA's Prometheus trigger on vLLM's num_requests_waiting, threshold 5 per replica (production-stack).
/// Waiting = requests not yet admitted (counted at the router/queue so that it can wake from zero); no GPU cap.
/// </summary>
public sealed class WaitingRequestsPolicy(SimOptions o) : IScalingPolicy
{
    public string Name => $"prometheus waiting requests (threshold {o.WaitingTarget})";
    public double Target => o.WaitingTarget;
    public bool PushActivation => false;

    public (double, bool) Evaluate(in Observation x) => (x.QueueRequests, x.QueueRequests > 0);
}

/// <summary>KEDA's polling plus the HPA's algorithm (AverageValue, tolerance, scale-up rate, scale-down stabilization).</summary>
public sealed class KedaHpa(SimOptions o, IScalingPolicy policy)
{
    private readonly Queue<(double Time, int Desired)> _recommendations = new();
    private double _lastActive = double.NegativeInfinity;

    public IScalingPolicy Policy { get; } = policy;

    /// <summary>The replicas wanted after a poll at <paramref name="now"/>, given the current spec.</summary>
    public int Poll(double now, int current, in Observation x)
    {
        var (metric, active) = Policy.Evaluate(x);
        if (active)
        {
            _lastActive = now;
        }

        if (current == 0)
        {
            return active ? 1 : 0; // KEDA activation: max(minReplicaCount, 1)
        }

        if (!active && now - _lastActive >= o.Cooldown)
        {
            _recommendations.Clear();
            return 0;
        }

        var ratio = metric / (Policy.Target * current);
        var desired = Math.Abs(ratio - 1) <= o.Tolerance ? current : ScalingMath.ReplicasFor(metric, Policy.Target);
        desired = Math.Clamp(desired, 1, o.MaxReplicas);
        desired = Math.Min(desired, Math.Max(2 * current, current + 4)); // default scale-up policy per period

        // Scale-down stabilization: the highest recommendation of the window.
        _recommendations.Enqueue((now, desired));
        while (_recommendations.Peek().Time < now - o.Stabilization)
        {
            _recommendations.Dequeue();
        }

        return desired < current ? Math.Min(current, _recommendations.Max(r => r.Desired)) : desired;
    }

    /// <summary>external-push: at zero replicas the stream pushes true as soon as the scaler sees work.</summary>
    public bool PushWakes(in Observation x) => Policy.PushActivation && Policy.Evaluate(x).Active;
}
