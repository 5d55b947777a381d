using Kiln.Runtime.Kv;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>A tensor-parallel group's KV pool: each rank keeps the keys and values of its own KV heads, under the same block ids.</summary>
internal sealed class ShardedKvCache(PagedKvCache[] shards) : IPagedKvCache
{
    public PagedKvCache Shard(int rank) => shards[rank];

    public int BlockCount => shards[0].BlockCount;

    public int BlockSize => shards[0].BlockSize;

    public void Bind(ReadOnlySpan<int> blockTables, int stride, int rows)
    {
        foreach (var shard in shards)
        {
            shard.Bind(blockTables, stride, rows);
        }
    }

    public void CopyBlock(int source, int destination)
    {
        foreach (var shard in shards)
        {
            shard.CopyBlock(source, destination);
        }
    }

    public void Dispose()
    {
        foreach (var shard in shards)
        {
            shard.Dispose();
        }
    }
}
