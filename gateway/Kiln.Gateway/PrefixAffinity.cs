namespace Kiln.Gateway;

/// <summary>
/// Which pods last served each prompt prefix: a bounded LRU map from a chained block hash (<see cref="PromptPrefix"/>)
/// to the few pods (most recent first) that took a call with that prefix. Several pods, not one: a prefix every call
/// shares (a global system prompt) soon lives on every pod and must not pull all traffic to whichever took it last;
/// the router picks the least loaded of its holders. The oldest entries go first when the map is full, as a pod's own
/// prefix cache evicts its oldest blocks, so the map forgets roughly what the pods forget.
/// </summary>
public sealed class PrefixAffinity(int capacity = PrefixAffinity.DefaultCapacity)
{
    /// <summary>64k entries: a few MB, and at 512 tokens a block more prefix than a few pods' KV caches hold.</summary>
    public const int DefaultCapacity = 65536;

    /// <summary>Holders remembered per prefix: beyond a handful, the prefix is everywhere and load decides anyway.</summary>
    public const int MaxPodsPerPrefix = 4;

    private readonly Dictionary<ulong, LinkedListNode<Entry>> _map = [];
    private readonly LinkedList<Entry> _order = new();
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

    /// <summary>The pods holding each block of the chain, longest prefix first: (block count matched, pod names).</summary>
    public IReadOnlyList<(int Blocks, string[] Pods)> Matches(IReadOnlyList<ulong> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var matches = new List<(int, string[])>();
        lock (_lock)
        {
            for (var i = blocks.Count - 1; i >= 0; i--)
            {
                if (_map.TryGetValue(blocks[i], out var node))
                {
                    matches.Add((i + 1, [.. node.Value.Pods]));
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
                    node.Value.Add(pod);
                    _order.AddFirst(node);
                    continue;
                }

                if (_map.Count >= capacity)
                {
                    var last = _order.Last!;
                    _order.RemoveLast();
                    _map.Remove(last.Value.Hash);
                }

                var entry = new Entry(hash);
                entry.Add(pod);
                _map[hash] = _order.AddFirst(entry);
            }
        }
    }

    private sealed class Entry(ulong hash)
    {
        public ulong Hash { get; } = hash;

        public List<string> Pods { get; } = new(MaxPodsPerPrefix);

        public void Add(string pod)
        {
            Pods.Remove(pod);
            Pods.Insert(0, pod);
            if (Pods.Count > MaxPodsPerPrefix)
            {
                Pods.RemoveAt(Pods.Count - 1);
            }
        }
    }
}
