using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Tensors;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>How a matrix is kept on the device; the kernels of gemv.cu read each one directly.</summary>
public enum WeightFormat
{
    /// <summary>bf16: what BF16 and F32 files become.</summary>
    Bf16,

    /// <summary>IEEE f16, as an F16 file stores it.</summary>
    F16,

    /// <summary>ggml's Q8_0, repacked: int8 values row-major, then one float32 scale per 32 values of a row.</summary>
    Q8,
}

/// <summary>
/// A row-major [rows x columns] weight matrix in device memory. F16 and Q8_0 files keep their size on the device
/// (2 and 1.125 bytes a weight); everything else is bf16. Query/key/value and gate/up are stacked into one matrix,
/// compact only when every part shares the format.
/// </summary>
public sealed unsafe class DeviceMatrix : IDisposable
{
    private DeviceMatrix(WeightFormat format, int rows, int columns, DeviceBuffer data, DeviceBuffer? scales)
    {
        Format = format;
        Rows = rows;
        Columns = columns;
        Data = data;
        Scales = scales;
    }

    public WeightFormat Format { get; }

    public int Rows { get; }

    public int Columns { get; }

    public DeviceBuffer Data { get; }

    /// <summary>Q8 only: float32 [rows x columns / 32].</summary>
    public DeviceBuffer? Scales { get; }

    public ulong ScalesPointer => Scales?.Pointer ?? 0;

    public long Bytes => Data.Bytes + (Scales?.Bytes ?? 0);

    /// <summary>What a [rows x columns] matrix in <paramref name="format"/> takes on the device (what a product reads of it).</summary>
    public static long BytesFor(WeightFormat format, int rows, int columns) =>
        format == WeightFormat.Q8
            ? ((long)rows * columns) + ((long)rows * (columns / WeightTypeInfo.Q8BlockSize) * sizeof(float))
            : (long)rows * columns * sizeof(ushort);

    /// <summary>A bf16 matrix already on the device (the benchmark's random weights).</summary>
    public static DeviceMatrix FromBf16(DeviceBuffer data, int rows, int columns) => new(WeightFormat.Bf16, rows, columns, data, null);

    /// <summary>A Q8 matrix already on the device: int8 values and a float32 scale per 32 of a row.</summary>
    public static DeviceMatrix FromQ8(DeviceBuffer values, DeviceBuffer scales, int rows, int columns) => new(WeightFormat.Q8, rows, columns, values, scales);

    /// <summary>The format the stacked parts keep: F16 or Q8 when all of them are stored so, else bf16.</summary>
    public static WeightFormat FormatOf(IReadOnlyList<WeightMatrix> parts) =>
        parts.All(p => p.Type == WeightType.F16) ? WeightFormat.F16
        : parts.All(p => p.Type == WeightType.Q8_0) ? WeightFormat.Q8
        : WeightFormat.Bf16;

    /// <summary>Stacks the parts' rows (same column count) into one device matrix, a chunk of rows at a time.</summary>
    public static DeviceMatrix Upload(nint stream, params WeightMatrix[] parts)
    {
        int columns = parts[0].Columns;
        foreach (var part in parts)
        {
            if (part.Columns != columns)
            {
                throw new ArgumentException($"{part.Name} has {part.Columns} columns; {parts[0].Name} has {columns}");
            }
        }

        int rows = checked((int)parts.Sum(p => (long)p.Rows));
        var format = FormatOf(parts);
        return format switch
        {
            WeightFormat.F16 => UploadF16(stream, parts, rows, columns),
            WeightFormat.Q8 => UploadQ8(stream, parts, rows, columns),
            _ => UploadBf16(stream, parts, rows, columns),
        };
    }

    private const int ChunkRows = 256;

    private static DeviceMatrix UploadBf16(nint stream, WeightMatrix[] parts, int rows, int columns)
    {
        var data = new DeviceBuffer((long)rows * columns * sizeof(ushort));
        var widened = new float[columns];
        var chunk = new ushort[ChunkRows * columns];
        long written = 0;
        foreach (var part in parts)
        {
            for (int first = 0; first < part.Rows; first += ChunkRows)
            {
                int count = Math.Min(ChunkRows, part.Rows - first);
                data.Upload(RowsAsBf16(part, first, count, widened, chunk), stream, written * sizeof(ushort));
                written += (long)count * columns;
            }
        }

        return new DeviceMatrix(WeightFormat.Bf16, rows, columns, data, null);
    }

    private static DeviceMatrix UploadF16(nint stream, WeightMatrix[] parts, int rows, int columns)
    {
        var data = new DeviceBuffer((long)rows * columns * sizeof(ushort));
        long written = 0;
        foreach (var part in parts)
        {
            // As stored, a chunk of rows at a time: a span cannot cover a matrix over 2 GiB (a large vocabulary's).
            for (int first = 0; first < part.Rows; first += ChunkRows)
            {
                long bytes = Math.Min(ChunkRows, part.Rows - first) * part.RowBytes;
                data.Upload(new ReadOnlySpan<byte>(part.Data + (part.RowBytes * first), (int)bytes), stream, written);
                written += bytes;
            }
        }

        return new DeviceMatrix(WeightFormat.F16, rows, columns, data, null);
    }

    private static DeviceMatrix UploadQ8(nint stream, WeightMatrix[] parts, int rows, int columns)
    {
        int blocks = columns / WeightTypeInfo.Q8BlockSize;
        var data = new DeviceBuffer((long)rows * columns);
        var scales = new DeviceBuffer((long)rows * blocks * sizeof(float));
        var values = new sbyte[ChunkRows * columns];
        var chunkScales = new float[ChunkRows * blocks];
        long row = 0;
        foreach (var part in parts)
        {
            for (int first = 0; first < part.Rows; first += ChunkRows)
            {
                int count = Math.Min(ChunkRows, part.Rows - first);
                RepackQ8(part, first, count, values, chunkScales);
                data.Upload<sbyte>(values.AsSpan(0, count * columns), stream, row * columns);
                scales.Upload<float>(chunkScales.AsSpan(0, count * blocks), stream, row * blocks * sizeof(float));
                row += count;
            }
        }

        return new DeviceMatrix(WeightFormat.Q8, rows, columns, data, scales);
    }

    /// <summary>
    /// Q8_0 rows [first, first + count) split into their int8 values and their scales widened to float32: value k of
    /// a row is values[k] * scales[k / 32], exactly what the CPU backend dequantizes.
    /// </summary>
    internal static void RepackQ8(WeightMatrix matrix, int first, int count, Span<sbyte> values, Span<float> scales)
    {
        int columns = matrix.Columns;
        int blocks = columns / WeightTypeInfo.Q8BlockSize;
        for (int r = 0; r < count; r++)
        {
            byte* source = matrix.Data + (matrix.RowBytes * (first + r));
            for (int b = 0; b < blocks; b++)
            {
                byte* block = source + (b * WeightTypeInfo.Q8BlockBytes);
                scales[(r * blocks) + b] = (float)BitConverter.UInt16BitsToHalf(*(ushort*)block);
                new ReadOnlySpan<sbyte>(block + 2, WeightTypeInfo.Q8BlockSize).CopyTo(values.Slice((r * columns) + (b * WeightTypeInfo.Q8BlockSize), WeightTypeInfo.Q8BlockSize));
            }
        }
    }

    /// <summary>
    /// Rows [first, first + count) as bf16: a view of the stored rows when they already are bf16 (no widening and
    /// narrowing back), else converted into <paramref name="chunk"/> through <paramref name="widened"/> (one row).
    /// </summary>
    internal static ReadOnlySpan<ushort> RowsAsBf16(WeightMatrix matrix, int first, int count, float[] widened, ushort[] chunk)
    {
        int columns = matrix.Columns;
        if (matrix.Type == WeightType.BF16)
        {
            return new ReadOnlySpan<ushort>(matrix.Data + (matrix.RowBytes * first), count * columns);
        }

        for (int r = 0; r < count; r++)
        {
            matrix.ReadRow(first + r, widened);
            var destination = chunk.AsSpan(r * columns, columns);
            for (int k = 0; k < columns; k++)
            {
                destination[k] = GgufWriter.ToBFloat16(widened[k]);
            }
        }

        return chunk.AsSpan(0, count * columns);
    }

    public void Dispose()
    {
        Data.Dispose();
        Scales?.Dispose();
    }
}
