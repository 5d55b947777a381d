namespace Kiln.ScalerSim;

/// <summary>The figures of one policy's run.</summary>
public sealed record SimResult(
    string Policy, double GpuSeconds, double P50Wait, double P95Wait, double MaxWait, int ScaleEvents, double ZeroSeconds,
    int PeakReplicas, int Unfinished, List<(double Time, int Replicas)> Timeline);

/// <summary>
/// A fluid model of the cluster: one FIFO queue of requests; replicas (one TP group each) that are pending (no free
/// group), cold-starting, ready or draining; a ready replica admits up to MaxSeqs requests and shares its token
/// throughput among them. Wait = admission - arrival. GPU time counts every replica holding a group.
/// </summary>
public sealed class Simulator(SimOptions o, List<TraceRequest> trace)
{
    private sealed class Pod
    {
        public double ReadyAt = double.PositiveInfinity;
        public bool Scheduled;
        public bool Draining;
        public readonly List<double> Remaining = [];
    }

    public SimResult Run(IScalingPolicy policy, int? alwaysOn = null)
    {
        var hpa = new KedaHpa(o, policy);
        var queue = new Queue<(double Arrival, double Tokens)>();
        var pods = new List<Pod>();
        var waits = new List<double>(trace.Count);
        var timeline = new List<(double, int)>();
        double gpuSeconds = 0, zeroSeconds = 0, t = 0, nextPoll = 0, nextPush = 0;
        int next = 0, desired = 0, events = 0, peak = 0;
        var end = trace[^1].Arrival;
        if (alwaysOn is int n)
        {
            desired = n;
            for (var i = 0; i < n; i++)
            {
                pods.Add(new Pod { Scheduled = true, ReadyAt = 0 });
            }
        }

        while (next < trace.Count || queue.Count > 0 || pods.Any(p => p.Remaining.Count > 0))
        {
            if (t > end + 7200)
            {
                break; // cannot drain (no capacity): report the rest as unfinished
            }

            while (next < trace.Count && trace[next].Arrival <= t)
            {
                queue.Enqueue((trace[next].Arrival, trace[next].Tokens));
                next++;
            }

            // Scheduling: pending replicas take free groups, then cold-start.
            var used = pods.Count(p => p.Scheduled);
            foreach (var p in pods.Where(p => !p.Scheduled && !p.Draining))
            {
                if (used >= o.Groups)
                {
                    break;
                }

                p.Scheduled = true;
                p.ReadyAt = t + o.ColdStart;
                used++;
            }

            // Admission, then progress (processor sharing).
            foreach (var p in pods.Where(p => p.Scheduled && !p.Draining && p.ReadyAt <= t))
            {
                while (p.Remaining.Count < o.MaxSeqs && queue.Count > 0)
                {
                    var (arrival, tokens) = queue.Dequeue();
                    waits.Add(t - arrival);
                    p.Remaining.Add(tokens);
                }
            }

            foreach (var p in pods.Where(p => p.Remaining.Count > 0))
            {
                var share = o.Throughput * o.Step / p.Remaining.Count;
                for (var i = p.Remaining.Count - 1; i >= 0; i--)
                {
                    p.Remaining[i] -= share;
                    if (p.Remaining[i] <= 0)
                    {
                        p.Remaining.RemoveAt(i);
                    }
                }
            }

            pods.RemoveAll(p => p.Draining && p.Remaining.Count == 0);

            if (alwaysOn is null)
            {
                var live = pods.Count(p => !p.Draining);
                var x = Observe(queue, pods);
                int? wanted = null;
                if (t >= nextPoll)
                {
                    wanted = hpa.Poll(t, desired, x);
                    nextPoll += o.Poll;
                }
                else if (desired == 0 && t >= nextPush)
                {
                    wanted = hpa.PushWakes(x) ? 1 : null;
                    nextPush = t + 0.25;
                }

                if (wanted is int w && w != desired)
                {
                    events++;
                    desired = w;
                }

                Reconcile(pods, desired, live);
            }

            var held = pods.Count(p => p.Scheduled);
            gpuSeconds += held * o.TpSize * o.Step;
            zeroSeconds += pods.Count == 0 ? o.Step : 0;
            peak = Math.Max(peak, pods.Count(p => !p.Draining));
            if (timeline.Count == 0 || timeline[^1].Item2 != desired)
            {
                timeline.Add((t, desired));
            }

            t += o.Step;
        }

        timeline.Add((t, desired));
        waits.Sort();
        var unfinished = trace.Count - waits.Count;
        return new SimResult(
            alwaysOn is null ? policy.Name : $"always-on at peak ({alwaysOn} replicas)", gpuSeconds,
            Percentile(waits, 0.50), Percentile(waits, 0.95), waits.Count > 0 ? waits[^1] : 0, events, zeroSeconds, peak, unfinished, timeline);
    }

    private Observation Observe(Queue<(double Arrival, double Tokens)> queue, List<Pod> pods)
    {
        double queueTokens = 0, podTokens = 0;
        foreach (var (_, tokens) in queue)
        {
            queueTokens += tokens;
        }

        var running = 0;
        foreach (var p in pods)
        {
            running += p.Remaining.Count;
            podTokens += p.Remaining.Sum();
        }

        var current = pods.Count(p => !p.Draining);
        var free = o.Groups - pods.Count(p => p.Scheduled) - pods.Count(p => !p.Scheduled && !p.Draining);
        return new Observation(queueTokens, queue.Count, podTokens, running, current, Math.Max(0, free));
    }

    // The Deployment controller: add replicas, or remove the least useful (pending, then cold, then the least busy).
    private static void Reconcile(List<Pod> pods, int desired, int live)
    {
        for (; live < desired; live++)
        {
            pods.Add(new Pod());
        }

        for (; live > desired; live--)
        {
            var victim = pods.Where(p => !p.Draining)
                .OrderBy(p => p.Scheduled ? 1 : 0).ThenByDescending(p => p.ReadyAt).ThenBy(p => p.Remaining.Count).First();
            if (!victim.Scheduled || victim.Remaining.Count == 0)
            {
                pods.Remove(victim);
            }
            else
            {
                victim.Draining = true; // finishes its sequences within the grace period, holding its GPUs
            }
        }
    }

    private static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
}
