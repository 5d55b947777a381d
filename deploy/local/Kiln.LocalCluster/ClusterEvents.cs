using System.Collections.Concurrent;

namespace Kiln.LocalCluster;

/// <summary>One thing that happened in the local cluster, with when.</summary>
public sealed record ClusterEvent(DateTimeOffset At, string Kind, string Detail);

/// <summary>
/// The local cluster's timeline: KEDA's scaling decisions, pods created, ready, stopped. The figures (how long a wake
/// from zero took, and where the time went) are read off it, and a failing test prints it.
/// </summary>
public sealed class ClusterEvents(TimeProvider time)
{
    private readonly ConcurrentQueue<ClusterEvent> _events = new();

    public event Action<ClusterEvent>? Added;

    public IReadOnlyList<ClusterEvent> All => [.. _events];

    public void Add(string kind, string detail)
    {
        var e = new ClusterEvent(time.GetUtcNow(), kind, detail);
        _events.Enqueue(e);
        Added?.Invoke(e);
    }

    /// <summary>The first event of a kind at or after a moment.</summary>
    public ClusterEvent? First(string kind, DateTimeOffset after) => _events.FirstOrDefault(e => e.Kind == kind && e.At >= after);

    public override string ToString() =>
        string.Join('\n', _events.Select(e => $"{e.At:HH:mm:ss.fff} {e.Kind,-16} {e.Detail}"));
}
