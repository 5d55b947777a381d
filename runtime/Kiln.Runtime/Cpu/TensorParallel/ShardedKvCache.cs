using Kiln.Runtime.Kv;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>
/// A tensor-parallel group's KV pool: one shard per rank (a CPU pool, or a GPU's), each holding the keys and values
/// of that rank's KV heads under the same block ids, so binding and copy-on-write fan out to every shard.
/// </summary>
public sealed class ShardedKvCache<TShard>(TShard[] shards) : IPagedKvCache
    where TShard : IPagedKvCache
{
    public TShard Shard(int rank) => shards[rank];

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
