using System.Text;
using Kiln.Runtime.Kv;

namespace Kiln.Tests.Kv;

/// <summary>
/// Drives a <see cref="BlockManager"/> with random allocate / append / fork / free sequences and checks it after every
/// operation against (1) a simulated KV store, where each slot records the exact token prefix its KV was computed from, so
/// any cached block served for the wrong prefix is caught, and (2) a small reference model of refcounts, LRU free order and
/// the prefix cache keyed by exact token prefixes (no hashing) that predicts every cached length.
/// </summary>
internal sealed class BlockManagerSimulation
{
    private readonly Random _random;
    private readonly BlockManager _manager;
    private readonly int _blockSize;
    private readonly int _blockCount;
    private readonly bool _caching;
    private readonly bool _exact;
    private readonly string?[] _kv;
    private readonly List<int[]> _prefixes = [];
    private readonly List<Sequence> _live = [];

    // Reference model: free blocks least recently used first; published prefixes; per block the entry it publishes and
    // the entry it is known as (its own, or an equal one it deduplicated to), which later blocks chain to.
    private readonly List<int> _freeOrder = [];
    private readonly Dictionary<string, Entry> _entries = [];
    private readonly Entry?[] _holder;
    private readonly Entry?[] _identity;

    // exact: whether the model must predict cache hits exactly (true unless the hasher collides on purpose).
    public BlockManagerSimulation(int seed, int blockSize, int blockCount, bool caching, BlockHasher? hasher, bool exact)
    {
        _random = new Random(seed);
        _blockSize = blockSize;
        _blockCount = blockCount;
        _caching = caching;
        _exact = exact;
        _manager = hasher is null ? new BlockManager(blockCount, blockSize, caching) : new BlockManager(blockCount, blockSize, caching, hasher);
        _kv = new string?[blockCount * blockSize];
        _holder = new Entry?[blockCount];
        _identity = new Entry?[blockCount];
        _freeOrder.AddRange(Enumerable.Range(0, blockCount));
        for (var i = 0; i < 4; i++)
        {
            _prefixes.Add(RandomTokens(_random.Next(0, (3 * blockSize) + 2)));
        }
    }

    public int Allocations { get; private set; }

    public int HitTokens { get; private set; }

    public int Evictions { get; private set; }

    public int Copies { get; private set; }

    public int Refusals { get; private set; }

    public void Run(int operations)
    {
        for (var op = 0; op < operations; op++)
        {
            var roll = _random.Next(100);
            if (_live.Count == 0 || roll < 30)
            {
                Allocate();
            }
            else if (roll < 75)
            {
                Append(_live[_random.Next(_live.Count)]);
            }
            else if (roll < 85)
            {
                Fork(_live[_random.Next(_live.Count)]);
            }
            else
            {
                Free(_live[_random.Next(_live.Count)]);
            }

            Check();
        }
    }

    private void Allocate()
    {
        var prompt = _prefixes[_random.Next(_prefixes.Count)].Concat(RandomTokens(_random.Next(1, (2 * _blockSize) + 2))).ToArray();
        var cached = _manager.CachedPrefixLength(prompt);
        Assert.True(cached % _blockSize == 0 && cached < prompt.Length, $"cached length {cached} for a {prompt.Length}-token prompt");
        var (hits, freeHits) = Lookup(prompt);
        var needed = (prompt.Length + _blockSize - 1) / _blockSize;
        var fits = needed - hits.Count <= _freeOrder.Count - freeHits;
        if (_exact)
        {
            Assert.Equal(hits.Count * _blockSize, cached);
            Assert.Equal(fits, _manager.CanAllocate(prompt));
        }

        var sequence = new Sequence([.. prompt], []);
        if (!_manager.CanAllocate(prompt))
        {
            Refusals++;
            Assert.Throws<InvalidOperationException>(() => _manager.Allocate(prompt, sequence.Table));
            Assert.Empty(sequence.Table);
            if (_live.Count > 0)
            {
                Free(_live[_random.Next(_live.Count)]); // as a scheduler would preempt to make room
            }

            return;
        }

        var got = _manager.Allocate(prompt, sequence.Table);
        Assert.Equal(cached, got);
        Assert.Equal(needed, sequence.Table.Count);
        Allocations++;
        HitTokens += got;
        for (var p = 0; p < got; p++)
        {
            // The heart of it: reused KV must be exactly what this prompt's prefix would have produced.
            Assert.Equal(PrefixKey(prompt, p + 1), _kv[Slot(sequence.Table, p)]);
        }

        for (var i = 0; i < needed; i++)
        {
            var block = sequence.Table[i];
            if (i < got / _blockSize)
            {
                if (_exact)
                {
                    Assert.Equal(hits[i], block);
                }

                _freeOrder.Remove(block);
            }
            else
            {
                TakeFresh(block);
            }
        }

        _live.Add(sequence);
        for (var p = got; p < prompt.Length; p++)
        {
            Write(sequence, p);
        }

        // Commit in two chunks (as chunked prefill would), sometimes restarting from 0 to check re-commits are harmless.
        sequence.Committed = _random.Next(2) == 0 ? 0 : got / _blockSize;
        Commit(sequence, _random.Next(got, prompt.Length + 1));
        Commit(sequence, prompt.Length);
    }

    private void Append(Sequence sequence)
    {
        if (sequence.Tokens.Count > 6 * _blockSize)
        {
            Free(sequence);
            return;
        }

        var table = sequence.Table;
        var newLength = sequence.Tokens.Count + 1;
        var index = (newLength - 1) / _blockSize;
        var shared = index < table.Count && RefCountOf(table[index]) > 1;
        var expected = (index == table.Count || shared) ? _freeOrder.Count > 0 : true;
        Assert.Equal(expected, _manager.CanAppend(newLength, table));
        if (!expected)
        {
            Refusals++;
            return;
        }

        var old = index < table.Count ? table[index] : -1;
        var copy = _manager.PrepareAppend(newLength, table);
        Assert.True(index < table.Count, "PrepareAppend left no block for the new position");
        if (old < 0)
        {
            Assert.Null(copy);
            TakeFresh(table[index]);
        }
        else if (shared)
        {
            Assert.NotNull(copy);
            Assert.Equal(old, copy.Value.Source);
            Assert.Equal(table[index], copy.Value.Destination);
            Assert.NotEqual(old, copy.Value.Destination);
            TakeFresh(copy.Value.Destination);
            Array.Copy(_kv, old * _blockSize, _kv, copy.Value.Destination * _blockSize, _blockSize);
            Copies++;
        }
        else
        {
            Assert.Null(copy);
            Assert.Equal(old, table[index]);
        }

        sequence.Tokens.Add(RandomTokens(1)[0]);
        Write(sequence, newLength - 1);
        Commit(sequence, newLength);
    }

    private void Fork(Sequence source)
    {
        var child = new Sequence([.. source.Tokens], []) { Committed = _random.Next(2) == 0 ? 0 : source.Committed };
        _manager.Fork(source.Table, child.Table);
        Assert.Equal(source.Table, child.Table);
        _live.Add(child);
    }

    private void Free(Sequence sequence)
    {
        _live.Remove(sequence);
        var blocks = sequence.Table.ToArray();
        _manager.Free(sequence.Table);
        Assert.Empty(sequence.Table);
        for (var i = blocks.Length - 1; i >= 0; i--)
        {
            var block = blocks[i];
            if (RefCountOf(block) == 0)
            {
                _freeOrder.Add(block);
                if (_holder[block] is null && _identity[block] is { } known && !_entries.ContainsKey(known.Key))
                {
                    // A committed duplicate whose published twin is gone is published in its place.
                    known.Block = block;
                    _entries[known.Key] = known;
                    _holder[block] = known;
                }
                else if (_holder[block] is null)
                {
                    _identity[block] = null;
                }
            }
        }
    }

    // Mirrors CommitFullBlocks on exact prefixes: publish each newly full block unless an equal one (same tokens after the
    // same published parent) is already there; a different entry under the same key (its parent was evicted) is replaced.
    private void Commit(Sequence sequence, int computed)
    {
        var start = sequence.Committed;
        _manager.CommitFullBlocks(sequence.Tokens.ToArray(), sequence.Table, computed, ref sequence.Committed);
        Assert.Equal(Math.Max(start, computed / _blockSize), sequence.Committed);
        for (var i = start; _caching && _exact && i < computed / _blockSize; i++)
        {
            var block = sequence.Table[i];
            if (_identity[block] is not null)
            {
                continue;
            }

            var parent = i == 0 ? null : _identity[sequence.Table[i - 1]] ?? throw new InvalidOperationException("model: parent not committed");
            var key = PrefixKey(sequence.Tokens, (i + 1) * _blockSize);
            if (_entries.TryGetValue(key, out var existing))
            {
                if (ReferenceEquals(existing.Parent, parent))
                {
                    _identity[block] = existing;
                    continue;
                }

                _holder[existing.Block] = null;
                if (RefCountOf(existing.Block) == 0)
                {
                    _identity[existing.Block] = null;
                }
            }

            var entry = new Entry(key, block, parent);
            _entries[key] = entry;
            _holder[block] = _identity[block] = entry;
        }
    }

    private (List<int> Hits, int FreeHits) Lookup(int[] prompt)
    {
        var hits = new List<int>();
        var freeHits = 0;
        Entry? parent = null;
        for (var i = 0; _caching && _exact && i < (prompt.Length - 1) / _blockSize; i++)
        {
            if (!_entries.TryGetValue(PrefixKey(prompt, (i + 1) * _blockSize), out var entry) || !ReferenceEquals(entry.Parent, parent))
            {
                break;
            }

            hits.Add(entry.Block);
            freeHits += RefCountOf(entry.Block) == 0 ? 1 : 0;
            parent = entry;
        }

        return (hits, freeHits);
    }

    // A fresh block must be the least recently used free one; whatever it published is gone.
    private void TakeFresh(int block)
    {
        Assert.Equal(_freeOrder[0], block);
        _freeOrder.RemoveAt(0);
        if (_holder[block] is { } entry)
        {
            _entries.Remove(entry.Key);
            Evictions++;
        }

        _holder[block] = _identity[block] = null;
    }

    private void Write(Sequence sequence, int position)
    {
        var block = sequence.Table[position / _blockSize];
        Assert.True(RefCountOf(block) == 1, $"writing position {position} into block {block}, which is shared");
        _kv[Slot(sequence.Table, position)] = PrefixKey(sequence.Tokens, position + 1);
    }

    private void Check()
    {
        _manager.CheckInvariants();
        var zero = 0;
        for (var block = 0; block < _blockCount; block++)
        {
            var references = RefCountOf(block);
            Assert.Equal(references, _manager.RefCount(block));
            Assert.Equal(references == 0, _manager.IsFree(block));
            zero += references == 0 ? 1 : 0;
        }

        Assert.Equal(zero, _freeOrder.Count);
        Assert.Equal(zero, _manager.FreeBlockCount);
        Assert.Equal(_blockCount - zero, _manager.UsedBlockCount);
        if (!_caching)
        {
            Assert.Equal(0, _manager.CachedBlockCount);
        }
        else if (_exact)
        {
            Assert.Equal(_freeOrder.Count(b => _holder[b] is not null), _manager.CachedBlockCount);
        }
    }

    private int RefCountOf(int block) => _live.Sum(s => s.Table.Count(b => b == block));

    private int Slot(List<int> table, int position) => (table[position / _blockSize] * _blockSize) + (position % _blockSize);

    // A tiny vocabulary so that random suffixes repeat and share blocks too.
    private int[] RandomTokens(int count) => Enumerable.Range(0, count).Select(_ => _random.Next(1, 4)).ToArray();

    private static string PrefixKey(IReadOnlyList<int> tokens, int count)
    {
        var builder = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            builder.Append(tokens[i]).Append(',');
        }

        return builder.ToString();
    }

    // Compared by reference: an entry's identity is one publication, as a chain id is in the manager.
    private sealed class Entry(string key, int block, Entry? parent)
    {
        public string Key { get; } = key;

        public int Block { get; set; } = block;

        public Entry? Parent { get; } = parent;
    }

    private sealed class Sequence(List<int> tokens, List<int> table)
    {
        public List<int> Tokens { get; } = tokens;

        public List<int> Table { get; } = table;

        public int Committed;
    }
}
