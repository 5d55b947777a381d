namespace Kiln.Runtime.Kv;

/// <summary>
/// Intrusive doubly linked list of free block ids over two int arrays (vLLM's FreeKVCacheBlockQueue): O(1) push to the
/// most-recently-used end, pop from the least-recently-used end and removal from the middle, with no allocation.
/// </summary>
internal sealed class BlockFreeList
{
    private readonly int[] _prev; // index Capacity is the sentinel; -1 marks a block that is not in the list
    private readonly int[] _next;
    private readonly int _sentinel;

    /// <summary>Starts with every block free, in id order.</summary>
    public BlockFreeList(int capacity)
    {
        _sentinel = capacity;
        _prev = new int[capacity + 1];
        _next = new int[capacity + 1];
        _prev[_sentinel] = _next[_sentinel] = _sentinel;
        for (var block = 0; block < capacity; block++)
        {
            PushMostRecent(block);
        }
    }

    public int Count { get; private set; }

    /// <summary>The least recently used block (the next to evict), or -1 when the list is empty.</summary>
    public int LeastRecent => Count == 0 ? -1 : _next[_sentinel];

    public bool Contains(int block) => _prev[block] >= 0;

    public void PushMostRecent(int block)
    {
        var tail = _prev[_sentinel];
        _prev[block] = tail;
        _next[block] = _sentinel;
        _next[tail] = block;
        _prev[_sentinel] = block;
        Count++;
    }

    public void Remove(int block)
    {
        _next[_prev[block]] = _next[block];
        _prev[_next[block]] = _prev[block];
        _prev[block] = _next[block] = -1;
        Count--;
    }

    /// <summary>Walks the list checking every link; throws InvalidOperationException unless it holds exactly Count blocks.</summary>
    public void Validate()
    {
        var walked = 0;
        var last = _sentinel;
        for (var node = _next[_sentinel]; node != _sentinel; last = node, node = _next[node])
        {
            if ((uint)node >= (uint)_sentinel || _prev[node] != last || ++walked > Count)
            {
                throw new InvalidOperationException($"free list is broken at block {node} (after {last}, {walked} walked of {Count})");
            }
        }

        if (walked != Count || _prev[_sentinel] != last)
        {
            throw new InvalidOperationException($"free list walks {walked} blocks but counts {Count}, or its tail link is wrong");
        }
    }
}
