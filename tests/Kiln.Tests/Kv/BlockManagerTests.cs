using Kiln.Runtime.Kv;
using Kiln.Tests.Infrastructure;

namespace Kiln.Tests.Kv;

public class BlockManagerTests
{
    [Fact]
    public void Eviction_IsLeastRecentlyUsedFirst()
    {
        var manager = new BlockManager(blockCount: 4, blockSize: 2);
        var a = AllocateAndCommit(manager, [1, 2, 3]);
        var b = AllocateAndCommit(manager, [5, 6, 7]);
        var aHead = a[0];
        manager.Free(a);
        manager.Free(b);
        Assert.Equal(2, manager.CachedBlockCount);

        // Two fresh blocks: the least recently freed ones, A's, go first.
        var fresh = new List<int>();
        Assert.Equal(0, manager.Allocate([9, 9, 9], fresh));
        Assert.Contains(aHead, fresh);
        Assert.Equal(1, manager.CachedBlockCount);
        Assert.Equal(0, manager.CachedPrefixLength([1, 2, 3]));
        Assert.Equal(2, manager.CachedPrefixLength([5, 6, 7]));
        var again = new List<int>();
        Assert.Equal(2, manager.Allocate([5, 6, 7], again));
        manager.CheckInvariants();
    }

    [Fact]
    public void Free_EvictsSequenceTailBeforeHead()
    {
        var manager = new BlockManager(blockCount: 3, blockSize: 2);
        var table = AllocateAndCommit(manager, [1, 2, 3, 4, 5]);
        manager.Free(table);
        Assert.Equal(2, manager.CachedBlockCount);
        var one = new List<int>();
        manager.Allocate([7], one); // takes the partial last block
        Assert.Equal(4, manager.CachedPrefixLength([1, 2, 3, 4, 8]));
        var two = new List<int>();
        manager.Allocate([7], two); // then the second block, not the first
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 3, 4, 8]));
        manager.CheckInvariants();
    }

    [Fact]
    public void Free_PublishesDuplicateWhoseTwinWasEvicted()
    {
        var manager = new BlockManager(blockCount: 4, blockSize: 2);
        // Both compute the same prompt before either commits: the second commit only records a duplicate.
        var first = new List<int>();
        var second = new List<int>();
        Assert.Equal(0, manager.Allocate([1, 2, 3], first));
        Assert.Equal(0, manager.Allocate([1, 2, 3], second));
        var committed = 0;
        manager.CommitFullBlocks([1, 2, 3], first, 3, ref committed);
        committed = 0;
        manager.CommitFullBlocks([1, 2, 3], second, 3, ref committed);
        manager.Free(first);
        var evicting = new List<int>();
        manager.Allocate([9, 9, 9], evicting);
        Assert.Equal(0, manager.CachedPrefixLength([1, 2, 3]));

        var duplicate = second[0];
        manager.Free(second);
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 3]));
        var again = new List<int>();
        Assert.Equal(2, manager.Allocate([1, 2, 3], again));
        Assert.Equal(duplicate, again[0]);
        manager.CheckInvariants();
    }

    [Fact]
    public void PrepareAppend_AfterFork_CopiesSharedPartialBlock()
    {
        var manager = new BlockManager(blockCount: 8, blockSize: 4);
        var parent = AllocateAndCommit(manager, [1, 2, 3, 4, 5, 6]);
        var child = new List<int>();
        manager.Fork(parent, child);
        Assert.Equal(parent, child);
        Assert.All(parent, block => Assert.Equal(2, manager.RefCount(block)));

        var shared = parent[1];
        var copy = manager.PrepareAppend(7, child);
        Assert.NotNull(copy);
        Assert.Equal(shared, copy.Value.Source);
        Assert.Equal(copy.Value.Destination, child[1]);
        Assert.NotEqual(shared, child[1]);
        Assert.Equal(shared, parent[1]);
        Assert.Equal(parent[0], child[0]);
        Assert.Equal(1, manager.RefCount(shared));
        Assert.Equal(1, manager.RefCount(child[1]));
        Assert.Equal(2, manager.RefCount(parent[0]));

        // Now both are private: no more copies, in either table.
        Assert.Null(manager.PrepareAppend(7, parent));
        Assert.Null(manager.PrepareAppend(8, child));
        Assert.Equal(shared, parent[1]);
        manager.CheckInvariants();
    }

    [Fact]
    public void PrepareAppend_AtBlockBoundary_AppendsFreshBlockWithoutCopy()
    {
        var manager = new BlockManager(blockCount: 4, blockSize: 2);
        var parent = AllocateAndCommit(manager, [1, 2]);
        var child = new List<int>();
        manager.Fork(parent, child);
        Assert.Null(manager.PrepareAppend(3, child));
        Assert.Equal(2, child.Count);
        Assert.Equal(1, manager.RefCount(child[1]));
        Assert.Equal(2, manager.RefCount(child[0]));
    }

    [Fact]
    public void PrepareAppend_IntoCommittedBlock_Throws()
    {
        var manager = new BlockManager(blockCount: 4, blockSize: 2);
        var table = AllocateAndCommit(manager, [1, 2, 3, 4]);
        Assert.Throws<InvalidOperationException>(() => manager.PrepareAppend(4, table));
    }

    [Fact]
    public void ConstantHash_DifferentTokensNeverHit()
    {
        var manager = new BlockManager(8, 2, prefixCaching: true, static (_, _) => 7UL);
        AllocateAndCommit(manager, [1, 2, 3]);
        Assert.Equal(0, manager.CachedPrefixLength([4, 5, 6]));
        Assert.Equal(0, manager.CachedPrefixLength([2, 1, 6]));
        Assert.Equal(0, manager.Allocate([4, 5, 6], []));
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 9]));
        manager.CheckInvariants();
    }

    [Fact]
    public void PrefixBlindHash_EqualBlockAfterOtherPrefixNeverHits()
    {
        var manager = new BlockManager(16, 2, prefixCaching: true, BlockManagerPropertyTests.PrefixBlind);
        var first = AllocateAndCommit(manager, [1, 2, 3, 4, 9]);
        var second = AllocateAndCommit(manager, [7, 8, 3, 4, 9]);
        // [3, 4] has one hash whatever precedes it, and one slot in the cache: it now holds the block after [7, 8].
        Assert.Equal(4, manager.CachedPrefixLength([7, 8, 3, 4, 0]));
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 3, 4, 0]));
        var table = new List<int>();
        Assert.Equal(2, manager.Allocate([1, 2, 3, 4, 0], table));
        Assert.Equal(first[0], table[0]);
        Assert.NotEqual(second[1], table[1]);
        manager.CheckInvariants();
    }

    [Fact]
    public void CachedPrefixLength_NeverCoversWholePrompt()
    {
        var manager = new BlockManager(8, 2);
        AllocateAndCommit(manager, [1, 2, 3, 4]);
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 3, 4]));
        Assert.Equal(0, manager.CachedPrefixLength([1, 2]));
        Assert.Equal(0, manager.CachedPrefixLength([1]));
        Assert.Equal(4, manager.CachedPrefixLength([1, 2, 3, 4, 5]));
        var table = new List<int>();
        Assert.Equal(2, manager.Allocate([1, 2, 3, 4], table));
        Assert.Equal(2, table.Count);
    }

    [Fact]
    public void CanAllocate_FalseWhenBlocksRunOut()
    {
        var manager = new BlockManager(blockCount: 3, blockSize: 2);
        var table = new List<int>();
        Assert.True(manager.CanAllocate([1, 2, 3, 4, 5, 6]));
        Assert.False(manager.CanAllocate([1, 2, 3, 4, 5, 6, 7]));
        manager.Allocate([1, 2, 3, 4, 5], table);
        Assert.Equal(0, manager.FreeBlockCount);
        Assert.Equal(3, manager.UsedBlockCount);
        Assert.False(manager.CanAllocate([1]));
        var refused = new List<int>();
        Assert.Throws<InvalidOperationException>(() => manager.Allocate([1], refused));
        Assert.Empty(refused);
        Assert.False(manager.CanAppend(7, table));
        manager.CheckInvariants();
    }

    [Fact]
    public void CanAllocate_CountsFreeCachedHitsAsUsedUp()
    {
        var manager = new BlockManager(blockCount: 3, blockSize: 2);
        manager.Free(AllocateAndCommit(manager, [1, 2, 3]));
        Assert.True(manager.CanAllocate([1, 2, 5, 6, 7])); // 1 hit + 2 fresh of the other 2
        var other = new List<int>();
        manager.Allocate([8], other);
        Assert.Equal(1, manager.CachedBlockCount);
        Assert.Equal(2, manager.FreeBlockCount);
        // 1 free cached hit + 2 fresh, but only 1 free block besides the hit.
        Assert.False(manager.CanAllocate([1, 2, 5, 6, 7]));
        Assert.Throws<InvalidOperationException>(() => manager.Allocate([1, 2, 5, 6, 7], []));
        Assert.True(manager.CanAllocate([1, 2, 5]));
        Assert.Equal(2, manager.Allocate([1, 2, 5], []));
        Assert.Equal(0, manager.FreeBlockCount);
        manager.CheckInvariants();
    }

    [Fact]
    public void SharedHit_IncrementsRefCountAndStats()
    {
        var manager = new BlockManager(blockCount: 8, blockSize: 2);
        var first = AllocateAndCommit(manager, [1, 2, 3, 4, 5]);
        var second = new List<int>();
        Assert.Equal(4, manager.Allocate([1, 2, 3, 4, 6, 7], second));
        Assert.Equal(first[0], second[0]);
        Assert.Equal(first[1], second[1]);
        Assert.Equal(2, manager.RefCount(first[0]));
        Assert.Equal(4, manager.PrefixLookupBlocks); // 2 + 2 full blocks before each prompt's last token
        Assert.Equal(2, manager.PrefixHitBlocks);
        manager.Free(first);
        Assert.Equal(1, manager.RefCount(second[0]));
        Assert.False(manager.IsFree(second[0]));
        manager.CheckInvariants();
    }

    [Fact]
    public void CommitFullBlocks_AdvancesOnlyOverNewlyFullBlocks()
    {
        var manager = new BlockManager(blockCount: 8, blockSize: 2);
        int[] tokens = [1, 2, 3, 4, 5];
        var table = new List<int>();
        manager.Allocate(tokens, table);
        var committed = 0;
        manager.CommitFullBlocks(tokens, table, 3, ref committed);
        Assert.Equal(1, committed);
        Assert.Equal(2, manager.CachedPrefixLength([1, 2, 3, 4, 5]));
        manager.CommitFullBlocks(tokens, table, 5, ref committed);
        Assert.Equal(2, committed);
        Assert.Equal(4, manager.CachedPrefixLength([1, 2, 3, 4, 5]));
        manager.CheckInvariants();
    }

    [Fact]
    public void WithoutPrefixCaching_NothingHits()
    {
        var manager = new BlockManager(blockCount: 8, blockSize: 2, prefixCaching: false);
        var table = AllocateAndCommit(manager, [1, 2, 3, 4, 5]);
        Assert.Equal(0, manager.CachedPrefixLength([1, 2, 3, 4, 5]));
        manager.Free(table);
        Assert.Equal(0, manager.CachedBlockCount);
        Assert.Equal(0, manager.Allocate([1, 2, 3, 4, 5], []));
        Assert.Equal(0, manager.PrefixHitBlocks);
        manager.CheckInvariants();
    }

    [Fact]
    public void InvalidArguments_Throw()
    {
        Assert.ThrowsAny<ArgumentException>(() => new BlockManager(0, 16));
        Assert.ThrowsAny<ArgumentException>(() => new BlockManager(16, 0));
        var manager = new BlockManager(blockCount: 8, blockSize: 2);
        var table = AllocateAndCommit(manager, [1, 2, 3]);
        Assert.Throws<ArgumentException>(() => manager.Allocate([1], table));
        Assert.Throws<ArgumentException>(() => manager.Allocate([], []));
        Assert.Throws<ArgumentException>(() => manager.Fork(table, table));
        Assert.Throws<ArgumentException>(() => manager.PrepareAppend(9, table));
        Assert.Throws<ArgumentException>(() => manager.CanAppend(1, table));
        Assert.ThrowsAny<ArgumentException>(() => manager.RefCount(8));
        var committed = 0;
        Assert.ThrowsAny<ArgumentException>(() => manager.CommitFullBlocks([1, 2, 3], table, 4, ref committed));
        var stale = new List<int>(table);
        manager.Free(table);
        Assert.Throws<ArgumentException>(() => manager.Free(stale));
        manager.CheckInvariants();
    }

    [Fact]
    public void HotPath_AfterWarmUp_AllocatesNothing()
    {
        var manager = new BlockManager(blockCount: 64, blockSize: 4);
        int[] prompt = [.. Enumerable.Range(1, 30)];
        int[] longer = [.. Enumerable.Range(1, 40)];
        var parent = new List<int>(16);
        var child = new List<int>(16);
        void Cycle()
        {
            manager.CanAllocate(prompt);
            manager.CachedPrefixLength(prompt);
            var committed = manager.Allocate(prompt, parent) / manager.BlockSize;
            manager.CommitFullBlocks(prompt, parent, prompt.Length, ref committed);
            manager.Fork(parent, child);
            for (var length = prompt.Length + 1; length <= longer.Length; length++)
            {
                if (manager.CanAppend(length, child))
                {
                    manager.PrepareAppend(length, child);
                }

                manager.CommitFullBlocks(longer, child, length, ref committed);
            }

            manager.Free(child);
            manager.Free(parent);
        }

        Cycle();
        Cycle();
        var windows = ThreadAllocations.PerWindow(5, () =>
        {
            for (var i = 0; i < 20; i++)
            {
                Cycle();
            }
        });

        Assert.True(windows.Min() == 0, $"every window of 20 cycles allocated: [{string.Join(", ", windows)}] bytes");
        Assert.True(manager.PrefixHitBlocks > 0);
        manager.CheckInvariants();
    }

    private static List<int> AllocateAndCommit(BlockManager manager, int[] tokens)
    {
        var table = new List<int>();
        var committed = manager.Allocate(tokens, table) / manager.BlockSize;
        manager.CommitFullBlocks(tokens, table, tokens.Length, ref committed);
        manager.CheckInvariants();
        return table;
    }
}
