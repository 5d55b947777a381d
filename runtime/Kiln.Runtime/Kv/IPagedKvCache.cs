namespace Kiln.Runtime.Kv;

/// <summary>
/// A backend's KV pool as the engine drives it: bind the step's block tables, copy blocks for copy-on-write.
/// Each runner creates its own (one pool on the CPU, one shard per rank in a tensor-parallel group, device memory
/// on a GPU), because only the runner knows where its keys and values live.
/// </summary>
public interface IPagedKvCache : IDisposable
{
    int BlockCount { get; }

    int BlockSize { get; }

    /// <summary>Row s of <paramref name="blockTables"/> (stride entries each) is the block table of the step's sequence s.</summary>
    void Bind(ReadOnlySpan<int> blockTables, int stride, int rows);

    void CopyBlock(int source, int destination);
}
