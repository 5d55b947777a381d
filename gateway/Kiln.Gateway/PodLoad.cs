using Kiln.Scaler.Contracts;

namespace Kiln.Gateway;

/// <summary>
/// A pod's token load as the router sees it: the engine's own backlog from its last stats read, plus the estimates
/// of what this gateway forwarded to it since that read began (the engine could not have counted those yet).
/// </summary>
public sealed class PodLoad
{
    private long _engineBacklog;
    private long _sinceStats;
    private int _inFlight;
    private long _forwarded;

    public long EngineBacklog => Interlocked.Read(ref _engineBacklog);

    /// <summary>The load the router compares: engine backlog plus tokens forwarded since the last read.</summary>
    public long Tokens => Interlocked.Read(ref _engineBacklog) + Interlocked.Read(ref _sinceStats);

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Forwarded => Interlocked.Read(ref _forwarded);

    public void Started(double estimatedTokens)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _forwarded);
        Interlocked.Add(ref _sinceStats, (long)Math.Ceiling(estimatedTokens));
    }

    public void Finished() => Interlocked.Decrement(ref _inFlight);

    /// <summary>What has been added since a read, taken when the read starts.</summary>
    public long Mark() => Interlocked.Read(ref _sinceStats);

    /// <summary>A stats read that began at <paramref name="mark"/> answered: the engine now counts what was sent before it.</summary>
    public void Read(PodStatsDocument stats, long mark)
    {
        ArgumentNullException.ThrowIfNull(stats);
        Interlocked.Exchange(ref _engineBacklog, Math.Max(0, stats.Backlog));
        Interlocked.Add(ref _sinceStats, -mark);
    }
}
