using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Kv;

/// <summary>
/// The KV pool: fixed-size blocks of [layers x blockSize x kvDim] keys and values in native memory, addressed through
/// the block tables of the current step (PagedAttention). <see cref="BlockManager"/> decides which block holds what;
/// this class only stores the numbers. Sequence s of a step is row s of the bound block tables.
/// </summary>
public sealed unsafe class PagedKvCache : IKvCache, IPagedKvCache
{
    private readonly NativeBuffer _keys;
    private readonly NativeBuffer _values;
    private readonly long _blockStride;
    private readonly long _layerStride;
    private readonly int[] _tables;
    private int _tableStride;
    private int _rows;

    public PagedKvCache(int layerCount, int kvDim, int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence)
    {
        LayerCount = layerCount;
        KvDim = kvDim;
        BlockCount = blockCount;
        BlockSize = blockSize;
        _layerStride = (long)blockSize * kvDim;
        _blockStride = layerCount * _layerStride;
        // Committed as blocks are first written, so a pool sized for full load costs at start only its address space.
        // Attention reads positions 0..p of its own sequence, all written before; a page never written reads zero.
        _keys = NativeBuffer.ZeroedOnDemand(blockCount * _blockStride * sizeof(float));
        _values = NativeBuffer.ZeroedOnDemand(blockCount * _blockStride * sizeof(float));
        _tables = new int[maxSequences * maxBlocksPerSequence];
        MaxBlocksPerSequence = maxBlocksPerSequence;
    }

    public int LayerCount { get; }

    public int KvDim { get; }

    public int BlockCount { get; }

    public int BlockSize { get; }

    public int MaxBlocksPerSequence { get; }

    /// <summary>Bytes one block takes (keys and values, all layers).</summary>
    public static long BlockBytes(int layerCount, int kvDim, int blockSize) => 2L * layerCount * blockSize * kvDim * sizeof(float);

    /// <summary>Binds this step's block tables: row s holds sequence s's blocks, <paramref name="stride"/> entries a row.</summary>
    public void Bind(ReadOnlySpan<int> blockTables, int stride, int rows)
    {
        if (stride > MaxBlocksPerSequence || (long)stride * rows > _tables.Length || blockTables.Length < stride * rows)
        {
            throw new ArgumentException($"block tables of {rows} x {stride} do not fit this pool's {_tables.Length / MaxBlocksPerSequence} x {MaxBlocksPerSequence}");
        }

        blockTables[..(stride * rows)].CopyTo(_tables);
        _tableStride = stride;
        _rows = rows;
    }

    public Span<float> Key(int layer, int sequence, int position) => new(_keys.Floats + Offset(layer, sequence, position), KvDim);

    public Span<float> Value(int layer, int sequence, int position) => new(_values.Floats + Offset(layer, sequence, position), KvDim);

    /// <summary>Copy-on-write: duplicates a whole block (all layers) so a sequence can append to a private copy.</summary>
    public void CopyBlock(int source, int destination)
    {
        long bytes = _blockStride * sizeof(float);
        Buffer.MemoryCopy(_keys.Floats + (source * _blockStride), _keys.Floats + (destination * _blockStride), bytes, bytes);
        Buffer.MemoryCopy(_values.Floats + (source * _blockStride), _values.Floats + (destination * _blockStride), bytes, bytes);
    }

    private long Offset(int layer, int sequence, int position)
    {
        int index = position / BlockSize;
        if ((uint)sequence >= (uint)_rows || (uint)index >= (uint)_tableStride)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"sequence row {sequence} position {position} is outside the bound block tables");
        }

        int block = _tables[(sequence * _tableStride) + index];
        if ((uint)block >= (uint)BlockCount)
        {
            throw new InvalidOperationException($"block table of row {sequence} names block {block}, outside the pool of {BlockCount}");
        }

        return (block * _blockStride) + (layer * _layerStride) + ((long)(position % BlockSize) * KvDim);
    }

    public void Dispose()
    {
        _keys.Dispose();
        _values.Dispose();
    }
}
