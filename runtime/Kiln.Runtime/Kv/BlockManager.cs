namespace Kiln.Runtime.Kv;

/// <summary>
/// Paged KV block allocator with prefix caching (vLLM's BlockPool / nano-vllm's BlockManager): pure bookkeeping over block ids.
/// Free blocks sit in an intrusive LRU list (head = least recently used, evicted first); full, computed blocks are published
/// under a chained hash so later prompts with the same prefix reuse them. Every operation is O(1) per block touched.
/// </summary>
public sealed class BlockManager
{
    // Content states of a block. Committed = full and hashed (its hash seeds the next block's) but not in the map,
    // because an equal block is already published there or a different block holds the hash (collision).
    private const byte StateNone = 0;
    private const byte StateCommitted = 1;
    private const byte StatePublished = 2;

    private readonly bool _prefixCaching;
    private readonly BlockHasher _hasher;
    private readonly int[] _refCount;
    private readonly BlockFreeList _free;
    private readonly byte[] _state;
    private readonly ulong[] _hash;
    private readonly long[] _chainId;  // identity of the logical content (prefix + tokens); unique per published block
    private readonly long[] _parentId; // chain id of the previous block when published (0 for a first block)
    private readonly int[] _tokens;    // token ids of published blocks, so a hash collision is detected instead of served
    private readonly Dictionary<ulong, int> _published;
    private long _nextChainId = 1;
    private int _cachedFree;

    public BlockManager(int blockCount, int blockSize, bool prefixCaching = true)
        : this(blockCount, blockSize, prefixCaching, BlockHashing.XxHash)
    {
    }

    /// <summary>Test hook: lets tests inject a colliding hash.</summary>
    internal BlockManager(int blockCount, int blockSize, bool prefixCaching, BlockHasher hasher)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentNullException.ThrowIfNull(hasher);
        if ((long)blockCount * blockSize > Array.MaxLength)
        {
            throw new ArgumentException($"{blockCount} blocks of {blockSize} tokens exceed the addressable token count", nameof(blockCount));
        }

        BlockCount = blockCount;
        BlockSize = blockSize;
        _prefixCaching = prefixCaching;
        _hasher = hasher;
        _refCount = new int[blockCount];
        _free = new BlockFreeList(blockCount);
        _state = new byte[blockCount];
        _hash = new ulong[blockCount];
        _chainId = new long[blockCount];
        _parentId = new long[blockCount];
        _tokens = prefixCaching ? new int[blockCount * blockSize] : [];
        _published = new Dictionary<ulong, int>(prefixCaching ? blockCount : 0); // sized once: never rehashes
    }

    public int BlockSize { get; }

    public int BlockCount { get; }

    public int FreeBlockCount => _free.Count;

    public int CachedBlockCount => _cachedFree;

    public int UsedBlockCount => BlockCount - FreeBlockCount;

    public long PrefixLookupBlocks { get; private set; }

    public long PrefixHitBlocks { get; private set; }

    public int CachedPrefixLength(ReadOnlySpan<int> tokens) => MatchPrefix(tokens, null, out _) * BlockSize;

    public bool CanAllocate(ReadOnlySpan<int> tokens)
    {
        ThrowIfEmpty(tokens);
        var hits = MatchPrefix(tokens, null, out var freeHits);
        // Free cached hits leave the free list, so they cannot also serve as fresh blocks.
        return BlocksFor(tokens.Length) - hits <= FreeBlockCount - freeHits;
    }

    /// <summary>Callers may start the sequence's committedBlocks at the returned count / BlockSize (or at 0: re-commits are no-ops).</summary>
    public int Allocate(ReadOnlySpan<int> tokens, List<int> blockTable)
    {
        ThrowIfEmpty(tokens);
        ArgumentNullException.ThrowIfNull(blockTable);
        if (blockTable.Count != 0)
        {
            throw new ArgumentException($"the block table must be empty but holds {blockTable.Count} blocks", nameof(blockTable));
        }

        // The lookup collects the hits into the table; refcounts change only once the allocation is known to fit.
        var hits = MatchPrefix(tokens, blockTable, out var freeHits);
        var needed = BlocksFor(tokens.Length);
        if (needed - hits > FreeBlockCount - freeHits)
        {
            blockTable.Clear();
            throw new InvalidOperationException($"{needed - hits} fresh blocks needed but only {FreeBlockCount - freeHits} free (check CanAllocate first)");
        }

        PrefixLookupBlocks += LookupLimit(tokens.Length);
        PrefixHitBlocks += hits;
        for (var i = 0; i < hits; i++)
        {
            Acquire(blockTable[i]);
        }

        for (var i = hits; i < needed; i++)
        {
            blockTable.Add(TakeFresh());
        }

        return hits * BlockSize;
    }

    /// <summary>Publishes newly full blocks; a block equal to a published one (same tokens after the same prefix) is only recorded.</summary>
    public void CommitFullBlocks(ReadOnlySpan<int> tokens, List<int> blockTable, int computedTokens, ref int committedBlocks)
    {
        ArgumentNullException.ThrowIfNull(blockTable);
        if ((uint)computedTokens > (uint)tokens.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(computedTokens), $"computedTokens {computedTokens} is outside 0..{tokens.Length}");
        }

        var full = computedTokens / BlockSize;
        if (full > blockTable.Count)
        {
            throw new ArgumentException($"{full} full blocks computed but the table holds only {blockTable.Count}", nameof(blockTable));
        }

        if ((uint)committedBlocks > (uint)blockTable.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(committedBlocks), $"committedBlocks {committedBlocks} is outside 0..{blockTable.Count}");
        }

        for (var i = committedBlocks; _prefixCaching && i < full; i++)
        {
            var block = InUse(blockTable[i], nameof(blockTable));
            if (_state[block] != StateNone)
            {
                continue; // a prefix hit or a block shared by Fork that the other sequence already committed
            }

            var parent = i == 0 ? -1 : InUse(blockTable[i - 1], nameof(blockTable));
            if (parent >= 0 && _state[parent] == StateNone)
            {
                throw new InvalidOperationException($"block {i - 1} of the sequence was never committed; committedBlocks is ahead of the commits");
            }

            var content = tokens.Slice(i * BlockSize, BlockSize);
            var parentId = parent < 0 ? 0 : _chainId[parent];
            var hash = _hasher(parent < 0 ? 0 : _hash[parent], content);
            _hash[block] = hash;
            _parentId[block] = parentId;
            content.CopyTo(_tokens.AsSpan(block * BlockSize, BlockSize)); // kept by duplicates too, for Free to promote them
            if (_published.TryGetValue(hash, out var existing))
            {
                if (Matches(existing, content, parentId))
                {
                    // Same content already published: adopt its identity so the following blocks chain to it.
                    _chainId[block] = _chainId[existing];
                    _state[block] = StateCommitted;
                    continue;
                }

                // A collision, or an entry whose parent was evicted (unreachable): the newest content takes the slot.
                _state[existing] = _refCount[existing] > 0 ? StateCommitted : StateNone;
                _cachedFree -= _refCount[existing] > 0 ? 0 : 1;
            }

            _published[hash] = block;
            _state[block] = StatePublished;
            _chainId[block] = _nextChainId++;
        }

        committedBlocks = Math.Max(committedBlocks, full);
    }

    public bool CanAppend(int newLength, List<int> blockTable)
    {
        var index = AppendIndex(newLength, blockTable);
        var needsBlock = index == blockTable.Count || _refCount[InUse(blockTable[index], nameof(blockTable))] > 1;
        return !needsBlock || FreeBlockCount > 0;
    }

    /// <summary>Throws InvalidOperationException if position newLength-1 lies in a committed (full, published) block.</summary>
    public (int Source, int Destination)? PrepareAppend(int newLength, List<int> blockTable)
    {
        var index = AppendIndex(newLength, blockTable);
        if (index == blockTable.Count)
        {
            blockTable.Add(TakeFresh());
            return null;
        }

        var source = InUse(blockTable[index], nameof(blockTable));
        if (_state[source] != StateNone)
        {
            // Writing into committed content would corrupt every prompt that hits it in the cache.
            throw new InvalidOperationException($"position {newLength - 1} lies in block {source}, which is full and committed");
        }

        if (_refCount[source] == 1)
        {
            return null;
        }

        var destination = TakeFresh();
        _refCount[source]--;
        blockTable[index] = destination;
        return (source, destination);
    }

    public void Fork(List<int> source, List<int> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.Count != 0)
        {
            throw new ArgumentException($"the destination table must be empty but holds {destination.Count} blocks", nameof(destination));
        }

        foreach (var block in source)
        {
            InUse(block, nameof(source));
        }

        foreach (var block in source)
        {
            _refCount[block]++;
            destination.Add(block);
        }
    }

    public void Free(List<int> blockTable)
    {
        ArgumentNullException.ThrowIfNull(blockTable);
        foreach (var block in blockTable)
        {
            InUse(block, nameof(blockTable));
        }

        // Reverse order puts the tail nearer the LRU end, so a sequence's tail is evicted before its head.
        for (var i = blockTable.Count - 1; i >= 0; i--)
        {
            var block = blockTable[i];
            if (--_refCount[block] > 0)
            {
                continue;
            }

            // A duplicate whose published twin has since left the map takes its place (same identity, same content).
            if (_state[block] == StatePublished || (_state[block] == StateCommitted && _published.TryAdd(_hash[block], block)))
            {
                _state[block] = StatePublished;
                _cachedFree++;
            }
            else
            {
                _state[block] = StateNone; // nothing in it can be found again
            }

            _free.PushMostRecent(block);
        }

        blockTable.Clear();
    }

    public int RefCount(int block) => _refCount[CheckBlock(block)];

    public bool IsFree(int block) => _free.Contains(CheckBlock(block));

    /// <summary>For the tests' invariant check (<c>BlockManagerInvariants</c>): a block's commit state and hash.</summary>
    internal (bool Committed, bool Published, ulong Hash) StateOf(int block) =>
        (_state[block] == StateCommitted, _state[block] == StatePublished, _hash[block]);

    internal bool PrefixCaching => _prefixCaching;

    internal int PublishedCount => _published.Count;

    internal bool IsPublishedAs(ulong hash, int block) => _published.TryGetValue(hash, out int owner) && owner == block;

    internal void ValidateFreeList() => _free.Validate();

    // At most the full blocks before the last token: that token must be computed to produce logits.
    private int LookupLimit(int length) => length == 0 ? 0 : (length - 1) / BlockSize;

    private int BlocksFor(int length) => (length + BlockSize - 1) / BlockSize;

    // Walks the prompt's full blocks through the cache, verifying each hit's tokens and that it follows the previous hit.
    private int MatchPrefix(ReadOnlySpan<int> tokens, List<int>? hitsOut, out int freeHits)
    {
        freeHits = 0;
        var hits = 0;
        for (var prev = -1; _prefixCaching && hits < LookupLimit(tokens.Length); hits++)
        {
            var content = tokens.Slice(hits * BlockSize, BlockSize);
            if (!_published.TryGetValue(_hasher(prev < 0 ? 0 : _hash[prev], content), out var block)
                || !Matches(block, content, prev < 0 ? 0 : _chainId[prev]))
            {
                break;
            }

            freeHits += _refCount[block] == 0 ? 1 : 0;
            hitsOut?.Add(block);
            prev = block;
        }

        return hits;
    }

    private bool Matches(int block, ReadOnlySpan<int> content, long parentId) =>
        _state[block] == StatePublished && _parentId[block] == parentId && content.SequenceEqual(_tokens.AsSpan(block * BlockSize, BlockSize));

    private void Acquire(int block)
    {
        if (_refCount[block]++ == 0)
        {
            _free.Remove(block);
            _cachedFree--; // only published blocks are hit
        }
    }

    // Takes the least recently used free block, evicting whatever it still caches.
    private int TakeFresh()
    {
        var block = _free.LeastRecent;
        if (block < 0)
        {
            throw new InvalidOperationException("no free KV block (check CanAllocate/CanAppend first)");
        }

        _free.Remove(block);
        if (_state[block] == StatePublished)
        {
            _published.Remove(_hash[block]);
            _cachedFree--;
        }

        _state[block] = StateNone;
        _refCount[block] = 1;
        return block;
    }

    private int AppendIndex(int newLength, List<int> blockTable)
    {
        ArgumentNullException.ThrowIfNull(blockTable);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(newLength);
        var index = (newLength - 1) / BlockSize;
        if (index != blockTable.Count && index != blockTable.Count - 1)
        {
            throw new ArgumentException($"position {newLength - 1} is neither in the last of the table's {blockTable.Count} blocks nor in the next one", nameof(newLength));
        }

        return index;
    }

    private int CheckBlock(int block)
    {
        if ((uint)block >= (uint)BlockCount)
        {
            throw new ArgumentOutOfRangeException(nameof(block), $"block {block} is outside 0..{BlockCount - 1}");
        }

        return block;
    }

    private int InUse(int block, string paramName)
    {
        if ((uint)block >= (uint)BlockCount || _refCount[block] == 0)
        {
            throw new ArgumentException($"block {block} is not an allocated block (stale or foreign table?)", paramName);
        }

        return block;
    }

    private static void ThrowIfEmpty(ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty)
        {
            throw new ArgumentException("a prompt needs at least one token", nameof(tokens));
        }
    }
}
