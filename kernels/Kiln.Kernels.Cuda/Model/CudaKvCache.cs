using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Kv;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// The KV pool in device memory, bf16: per layer, keys and values of [blocks x blockSize x kvDim], so a token's slot
/// (block * blockSize + offset) addresses it directly. Block tables are kept on the device at a fixed stride of
/// <see cref="MaxBlocksPerSequence"/>, so a captured CUDA graph's arguments stay valid from step to step; a host
/// copy gives the runner each token's slot.
/// </summary>
public sealed unsafe class CudaKvCache : IPagedKvCache
{
    private readonly CudaDevice _device;
    private readonly nint _stream;
    private readonly DeviceBuffer _keys;
    private readonly DeviceBuffer _values;
    private readonly DeviceBuffer _tables;
    private readonly PinnedBuffer<int> _hostTables;
    private readonly long _layerBytes;
    private int _rows;

    public CudaKvCache(CudaDevice device, nint stream, int layerCount, int kvDim, int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence)
    {
        _device = device;
        _stream = stream;
        LayerCount = layerCount;
        KvDim = kvDim;
        BlockCount = blockCount;
        BlockSize = blockSize;
        MaxSequences = maxSequences;
        MaxBlocksPerSequence = maxBlocksPerSequence;
        _layerBytes = (long)blockCount * blockSize * kvDim * sizeof(ushort);
        _keys = new DeviceBuffer(_layerBytes * layerCount);
        _values = new DeviceBuffer(_layerBytes * layerCount);
        _tables = new DeviceBuffer((long)maxSequences * maxBlocksPerSequence * sizeof(int));
        _hostTables = new PinnedBuffer<int>(maxSequences * maxBlocksPerSequence);
    }

    public int LayerCount { get; }

    public int KvDim { get; }

    public int BlockCount { get; }

    public int BlockSize { get; }

    public int MaxSequences { get; }

    public int MaxBlocksPerSequence { get; }

    public ulong Tables => _tables.Pointer;

    public ulong Keys(int layer) => _keys.Pointer + (ulong)(layer * _layerBytes);

    public ulong Values(int layer) => _values.Pointer + (ulong)(layer * _layerBytes);

    /// <summary>Bytes one block takes: keys and values of every layer, bf16.</summary>
    public static long BlockBytes(int layerCount, int kvDim, int blockSize) => 2L * layerCount * blockSize * kvDim * sizeof(ushort);

    public void Bind(ReadOnlySpan<int> blockTables, int stride, int rows)
    {
        if (stride > MaxBlocksPerSequence || rows > MaxSequences || blockTables.Length < stride * rows)
        {
            throw new ArgumentException($"block tables of {rows} x {stride} do not fit this pool's {MaxSequences} x {MaxBlocksPerSequence}");
        }

        var host = _hostTables.Span;
        for (int r = 0; r < rows; r++)
        {
            blockTables.Slice(r * stride, stride).CopyTo(host.Slice(r * MaxBlocksPerSequence, stride));
        }

        _rows = rows;
        _device.MakeCurrent(); // the engine binds from its own thread
        Driver.Check(Driver.cuMemcpyHtoDAsync(_tables.Pointer, _hostTables.Pointer, (nuint)((long)rows * MaxBlocksPerSequence * sizeof(int)), _stream));
    }

    /// <summary>The cache slot of <paramref name="position"/> in the sequence at block-table row <paramref name="row"/>.</summary>
    public int Slot(int row, int position)
    {
        int index = position / BlockSize;
        if ((uint)row >= (uint)_rows || (uint)index >= (uint)MaxBlocksPerSequence)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"sequence row {row} position {position} is outside the bound block tables");
        }

        int block = _hostTables.Span[(row * MaxBlocksPerSequence) + index];
        if ((uint)block >= (uint)BlockCount)
        {
            throw new InvalidOperationException($"block table of row {row} names block {block}, outside the pool of {BlockCount}");
        }

        return (block * BlockSize) + (position % BlockSize);
    }

    public void CopyBlock(int source, int destination)
    {
        long blockBytes = _layerBytes / BlockCount;
        _device.MakeCurrent();
        for (int layer = 0; layer < LayerCount; layer++)
        {
            ulong from = (ulong)((layer * _layerBytes) + (source * blockBytes));
            ulong to = (ulong)((layer * _layerBytes) + (destination * blockBytes));
            Driver.Check(Driver.cuMemcpyDtoDAsync(_keys.Pointer + to, _keys.Pointer + from, (nuint)blockBytes, _stream));
            Driver.Check(Driver.cuMemcpyDtoDAsync(_values.Pointer + to, _values.Pointer + from, (nuint)blockBytes, _stream));
        }
    }

    /// <summary>Reads a token's key or value (bf16 widened) back to the host: for tests.</summary>
    public float[] Read(bool key, int layer, int slot)
    {
        var bits = new ushort[KvDim];
        (key ? _keys : _values).Download<ushort>(bits, _stream, (layer * _layerBytes) + ((long)slot * KvDim * sizeof(ushort)));
        var values = new float[KvDim];
        Runtime.Tensors.WeightMatrix.WidenBFloat16(bits, values);
        return values;
    }

    public void Dispose()
    {
        _device.MakeCurrent();
        _keys.Dispose();
        _values.Dispose();
        _tables.Dispose();
        _hostTables.Dispose();
    }
}
