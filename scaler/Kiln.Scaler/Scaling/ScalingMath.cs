namespace Kiln.Scaler.Scaling;

/// <summary>
/// What the scaler knows about one ScaledObject at one instant: the queue, the pods, the capacity, and the calls the
/// gateways hold while no pod is ready (<paramref name="HeldTokens"/> priced as queue jobs are).
/// </summary>
public readonly record struct ScalingInputs(
    double QueueTokens,
    double PodTokens,
    int RunningSequences,
    int CurrentReplicas,
    int FreeGroups,
    double TargetBacklogPerReplica,
    double ActivationThreshold,
    double HeldTokens = 0,
    int HeldRequests = 0);

/// <summary>The answer: the metric KEDA gets, whether it is active, and why the metric was capped.</summary>
public readonly record struct ScalingDecision(
    double Backlog,
    double Metric,
    bool Active,
    bool Capped,
    int WantedReplicas,
    int AllowedReplicas);

/// <summary>
/// The scaler's decision, pure and allocation-free so that the simulation calls exactly this code.
/// KEDA's HPA (AverageValue) wants ceil(metric / target) replicas; the metric is capped so that this never exceeds
/// the replicas that exist plus the TP groups still free: asking for more would only create Pending pods.
/// </summary>
public static class ScalingMath
{
    public static ScalingDecision Decide(in ScalingInputs input)
    {
        var target = input.TargetBacklogPerReplica;
        var backlog = Math.Max(0, input.QueueTokens) + Math.Max(0, input.PodTokens) + Math.Max(0, input.HeldTokens);
        var wanted = ReplicasFor(backlog, target);
        var allowed = Math.Max(0, input.CurrentReplicas) + Math.Max(0, input.FreeGroups);
        var metric = backlog;
        var capped = wanted > allowed;
        if (capped)
        {
            metric = allowed * target;
            // allowed * target / target can round above allowed (3 * 0.1 / 0.1 = 3.0000000000000004).
            while (metric > 0 && ReplicasFor(metric, target) > allowed)
            {
                metric = Math.BitDecrement(metric);
            }
        }

        // Running sequences keep it active: KEDA scales to zero from any N once inactive for the cooldown. A held call
        // is a caller waiting now: it activates whatever the threshold, which is for background work.
        var active = backlog > input.ActivationThreshold || input.RunningSequences > 0 || input.HeldRequests > 0;
        return new ScalingDecision(backlog, metric, active, capped, wanted, allowed);
    }

    /// <summary>ceil(metric / target): the replicas KEDA's HPA asks for (before its 10% tolerance).</summary>
    public static int ReplicasFor(double metric, double target) =>
        metric <= 0 ? 0 : (int)Math.Min(int.MaxValue, Math.Ceiling(metric / target));

    /// <summary>The deprecated int64 fields: rounded up, so that a positive float never reads as 0.</summary>
    public static long ToInt64(double value) =>
        double.IsFinite(value) && value > 0 ? (long)Math.Min(long.MaxValue, Math.Ceiling(value)) : 0;

    /// <summary>TP groups free on one node: floor((allocatable - requested) / tpSize).</summary>
    public static int FreeGroupsOnNode(long allocatable, long requested, int tpSize) =>
        tpSize <= 0 ? 0 : (int)Math.Max(0, (allocatable - requested) / tpSize);
}
