namespace Kiln.Gateway;

/// <summary>
/// Which pod last served each prompt prefix: a bounded LRU map from a chained block hash
/// (<see cref="PromptPrefix"/>) to a pod name. The oldest entries go first when it is full, as a pod's own prefix
/// cache evicts its oldest blocks, so the map forgets roughly what the pods forget.
/// </summary>
public sealed class PrefixAffinity(int capacity = PrefixAffinity.DefaultCapacity)
{
    /// <summary>64k entries: about 6 MB, and at 512 tokens a block more prefix than a few pods' KV caches hold.</summary>
    public const int DefaultCapacity = 65536;

    private readonly Dictionary<ulong, LinkedListNode<(ulong Hash, string Pod)>> _map = [];
    private readonly LinkedList<(ulong Hash, string Pod)> _order = new();
    private readonly Lock _lock = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _map.Count;
            }
        }
    }

    /// <summary>The pods holding each block of the chain, longest prefix first: (block count matched, pod name).</summary>
    public IReadOnlyList<(int Blocks, string Pod)> Matches(IReadOnlyList<ulong> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var matches = new List<(int, string)>();
        lock (_lock)
        {
            for (var i = blocks.Count - 1; i >= 0; i--)
            {
                if (_map.TryGetValue(blocks[i], out var node))
                {
                    matches.Add((i + 1, node.Value.Pod));
                }
            }
        }

        return matches;
    }

    /// <summary>The pod now holds every block of the chain (it will have cached them after prefill).</summary>
    public void Record(IReadOnlyList<ulong> blocks, string pod)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        lock (_lock)
        {
            foreach (var hash in blocks)
            {
                if (_map.TryGetValue(hash, out var node))
                {
                    _order.Remove(node);
                    node.Value = (hash, pod);
                    _order.AddFirst(node);
                    continue;
                }

                if (_map.Count >= capacity)
                {
                    var last = _order.Last!;
                    _order.RemoveLast();
                    _map.Remove(last.Value.Hash);
                }

                _map[hash] = _order.AddFirst((hash, pod));
            }
        }
    }
}
