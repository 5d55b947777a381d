using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Kiln.Runtime.Tensors;

/// <summary>
/// A row-major weight matrix [Rows x Columns] in its stored type, used in place (memory-mapped file or native memory
/// owned by the model). A linear layer y = W x keeps one output feature per row, as PyTorch and ggml both lay it out.
/// </summary>
public sealed unsafe class WeightMatrix
{
    public WeightMatrix(string name, WeightType type, int rows, int columns, byte* data)
    {
        int blockValues = WeightTypeInfo.BlockValues(type);
        if (columns % blockValues != 0)
        {
            throw new ArgumentException($"{name}: {type} rows must be a multiple of {blockValues} values", nameof(columns));
        }

        Name = name;
        Type = type;
        Rows = rows;
        Columns = columns;
        Data = data;
        RowBytes = WeightTypeInfo.RowBytes(type, columns);
    }

    public string Name { get; }

    public WeightType Type { get; }

    public int Rows { get; }

    public int Columns { get; }

    public long RowBytes { get; }

    public byte* Data { get; }

    public long ByteSize => RowBytes * Rows;

    /// <summary>Writes row <paramref name="row"/> as float32 into <paramref name="destination"/> (length Columns).</summary>
    public void ReadRow(int row, Span<float> destination)
    {
        byte* src = Data + (RowBytes * row);
        var dst = destination[..Columns];
        switch (Type)
        {
            case WeightType.F32:
                new ReadOnlySpan<float>(src, Columns).CopyTo(dst);
                break;
            case WeightType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, Columns), dst);
                break;
            case WeightType.BF16:
                WidenBFloat16(new ReadOnlySpan<ushort>(src, Columns), dst);
                break;
            default:
                fixed (float* d = dst)
                {
                    Quants.BlockDequantizer.Row(Type, src, d, Columns);
                }

                break;
        }
    }

    /// <summary>
    /// A span over the row when it is already float32 (no copy); otherwise widens it into <paramref name="scratch"/>.
    /// </summary>
    public ReadOnlySpan<float> RowAsFloat(int row, Span<float> scratch)
    {
        if (Type == WeightType.F32)
        {
            return new ReadOnlySpan<float>(Data + (RowBytes * row), Columns);
        }

        ReadRow(row, scratch);
        return scratch[..Columns];
    }

    /// <summary>bfloat16 is the high half of a float32: widening is a 16-bit shift.</summary>
    public static void WidenBFloat16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        TensorPrimitives.ConvertTruncating<ushort, uint>(source, bits);
        TensorPrimitives.ShiftLeft(bits, 16, bits);
    }
}
