using Kiln.Runtime.Kv;

namespace Kiln.Tests.Kv;

/// <summary>
/// Everything that must hold between any two operations of a <see cref="BlockManager"/>: reference counts agree with
/// the free list, no free block is committed but unpublished (it could never be found again), every published block is
/// the one the hash map names, and the counts the manager reports are the counts of its blocks.
/// </summary>
internal static class BlockManagerInvariants
{
    public static void CheckInvariants(this BlockManager manager)
    {
        manager.ValidateFreeList();
        int free = 0, cached = 0, published = 0;
        for (int b = 0; b < manager.BlockCount; b++)
        {
            int references = manager.RefCount(b);
            if (references < 0 || (references == 0) != manager.IsFree(b))
            {
                throw new InvalidOperationException($"block {b} has refcount {references} but IsFree={manager.IsFree(b)}");
            }

            var (committed, isPublished, hash) = manager.StateOf(b);
            free += references == 0 ? 1 : 0;
            if (references == 0 && committed)
            {
                throw new InvalidOperationException($"free block {b} is committed but unpublished, so it can never be found");
            }

            if (isPublished)
            {
                published++;
                cached += references == 0 ? 1 : 0;
                if (!manager.IsPublishedAs(hash, b))
                {
                    throw new InvalidOperationException($"published block {b} is not in the hash map under its hash {hash:x16}");
                }
            }
        }

        // Every map entry is some published block's own (checked above), so equal counts mean no stale entries.
        if (free != manager.FreeBlockCount || cached != manager.CachedBlockCount || published != manager.PublishedCount || (!manager.PrefixCaching && published != 0))
        {
            throw new InvalidOperationException(
                $"counts disagree: free {free}/{manager.FreeBlockCount}, cached {cached}/{manager.CachedBlockCount}, published {published}/{manager.PublishedCount} (prefix caching {manager.PrefixCaching})");
        }
    }
}
