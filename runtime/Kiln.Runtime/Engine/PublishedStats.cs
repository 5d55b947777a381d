namespace Kiln.Runtime.Engine;

/// <summary>
/// The engine's figures as the engine thread last published them (once a step), read from any thread as one
/// consistent set, without a lock and without allocating: a sequence lock. The writer makes the version odd while it
/// writes; a reader copies the figures and keeps the copy only if the version was the same even number before and after.
/// </summary>
internal sealed class PublishedStats
{
    private Figures _figures;
    private int _version;

    /// <summary>Engine thread only.</summary>
    public void Publish(in Figures figures)
    {
        Interlocked.Increment(ref _version); // odd: being written (a full fence)
        _figures = figures;
        Interlocked.Increment(ref _version); // even: complete
    }

    public Figures Read()
    {
        var spin = default(SpinWait);
        while (true)
        {
            int before = Volatile.Read(ref _version);
            if ((before & 1) == 0)
            {
                var copy = _figures;
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _version) == before)
                {
                    return copy;
                }
            }

            spin.SpinOnce();
        }
    }

    /// <summary>What one step leaves: the load, the KV pool, the rates and the running totals.</summary>
    internal readonly record struct Figures(
        int WaitingSequences,
        int RunningSequences,
        int RunningRequests,
        long PendingPromptTokens,
        long PendingDecodeTokens,
        int KvBlocksTotal,
        int KvBlocksUsed,
        int KvBlocksFree,
        int KvBlocksCached,
        long PrefixLookupBlocks,
        long PrefixHitBlocks,
        double PromptTokensPerSecond,
        double OutputTokensPerSecond,
        long Preemptions,
        long PromptTokensAdmitted,
        long PromptTokensCached);
}
