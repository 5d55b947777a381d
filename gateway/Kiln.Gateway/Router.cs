namespace Kiln.Gateway;

/// <summary>
/// Picks a routable pod for a call. Prefix affinity: the least loaded of the pods that served the longest prefix of
/// this prompt, while its load is no more above the least loaded pod's than the prefill the cache would save (the
/// matched tokens), or, when that prefix is at least half the prompt, while its load is under
/// <c>AffinityMaxBacklogTokens</c>; otherwise the least loaded pod. Least-loaded and round-robin ignore prefixes.
/// </summary>
public sealed class Router(PodDirectory directory, PrefixAffinity affinity, BalancingMode mode, long affinityMaxBacklogTokens, int prefixBlockChars)
{
    private int _cursor = -1;

    public BalancingMode Mode { get; } = mode;

    /// <summary>A pod for the call with these prefix blocks, or null when none is routable (the call is held).</summary>
    public RouteChoice? Choose(IReadOnlyList<ulong> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var pods = directory.Routable();
        if (pods.Count == 0)
        {
            return null;
        }

        var turn = Interlocked.Increment(ref _cursor) & int.MaxValue;
        RouteChoice choice = Mode switch
        {
            BalancingMode.RoundRobin => new RouteChoice(pods[turn % pods.Count], false),
            BalancingMode.LeastLoaded => new RouteChoice(LeastLoaded(pods, turn), false),
            _ => ByAffinity(pods, blocks, turn),
        };

        if (Mode == BalancingMode.PrefixAffinity && blocks.Count > 0)
        {
            choice.Pod.CountAffinity(choice.AffinityHit);
            affinity.Record(blocks, choice.Pod.Name);
        }

        return choice;
    }

    private RouteChoice ByAffinity(IReadOnlyList<Pod> pods, IReadOnlyList<ulong> blocks, int turn)
    {
        var least = LeastLoaded(pods, turn);
        if (blocks.Count == 0)
        {
            return new RouteChoice(least, false);
        }

        var leastTokens = least.Load.Tokens;
        foreach (var (matched, names) in affinity.Matches(blocks))
        {
            var savedTokens = (long)matched * prefixBlockChars / Kiln.Scaler.Contracts.TokenEstimator.CharsPerToken;
            // The absolute bound only for a prefix that is at least half the prompt (a system prompt and a question, a
            // conversation's next turn); a short shared head (one global block) only within the slack, else it would
            // pull every call to one pod until that pod is AffinityMaxBacklogTokens deep.
            var bound = matched * 2 >= blocks.Count ? affinityMaxBacklogTokens : 0;
            Pod? best = null;
            foreach (var name in names)
            {
                // Gone or not ready: skipped; a shorter prefix may live elsewhere.
                var pod = pods.FirstOrDefault(p => p.Name == name);
                var load = pod?.Load.Tokens ?? long.MaxValue;
                if (pod is not null && (load < bound || load <= leastTokens + savedTokens) && (best is null || load < best.Load.Tokens))
                {
                    best = pod;
                }
            }

            if (best is not null)
            {
                return new RouteChoice(best, true);
            }
        }

        return new RouteChoice(least, false);
    }

    // Smallest token load, then fewest calls in flight; equal pods take turns so that an idle fleet is spread.
    private static Pod LeastLoaded(IReadOnlyList<Pod> pods, int turn)
    {
        Pod? best = null;
        for (var k = 0; k < pods.Count; k++)
        {
            var p = pods[(turn + k) % pods.Count];
            if (best is null || p.Load.Tokens < best.Load.Tokens || (p.Load.Tokens == best.Load.Tokens && p.Load.InFlight < best.Load.InFlight))
            {
                best = p;
            }
        }

        return best!;
    }
}
