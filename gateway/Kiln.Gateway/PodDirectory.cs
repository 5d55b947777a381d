using System.Collections.Concurrent;

namespace Kiln.Gateway;

/// <summary>
/// The pods discovery currently lists, by name. A pod that leaves the list is dropped at once (its in-flight calls
/// finish on their own connections); <see cref="Changed"/> wakes held calls whenever the routable set may have grown.
/// </summary>
public sealed class PodDirectory
{
    private readonly ConcurrentDictionary<string, Pod> _pods = new(StringComparer.Ordinal);
    private readonly AsyncSignal _changed = new();

    /// <summary>Completes at the next change; take it before looking for a pod.</summary>
    public Task Changed => _changed.Next;

    public IReadOnlyList<Pod> All => [.. _pods.Values.OrderBy(p => p.Name, StringComparer.Ordinal)];

    /// <summary>Routable pods in name order, so that ties break the same way on every call.</summary>
    public IReadOnlyList<Pod> Routable() => [.. _pods.Values.Where(p => p.Routable).OrderBy(p => p.Name, StringComparer.Ordinal)];

    /// <summary>Replaces the set with the candidates; returns the pods that are new (their stats are read at once).</summary>
    public IReadOnlyList<Pod> Update(IReadOnlyCollection<PodCandidate> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var added = new List<Pod>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in candidates)
        {
            names.Add(c.Name);
            // A pod whose IP changed under the same name (rare, a restart) is a new pod.
            if (_pods.TryGetValue(c.Name, out var existing) && existing.BaseUrl == c.BaseUrl)
            {
                continue;
            }

            var pod = new Pod(c.Name, c.BaseUrl);
            _pods[c.Name] = pod;
            added.Add(pod);
        }

        var removed = false;
        foreach (var name in _pods.Keys)
        {
            if (!names.Contains(name))
            {
                removed |= _pods.TryRemove(name, out _);
            }
        }

        if (added.Count > 0 || removed)
        {
            Signal();
        }

        return added;
    }

    public void Signal() => _changed.Set();
}
