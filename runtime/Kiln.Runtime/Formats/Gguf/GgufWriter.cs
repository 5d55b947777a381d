using System.Runtime.InteropServices;
using System.Text;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Formats.Gguf;

/// <summary>
/// Writes GGUF v3 files: used to export generated models so that llama.cpp can run the very same weights
/// (tests and benchmarks compare against it), and to build deliberately corrupted files in tests.
/// Metadata values take the CLR types that <see cref="GgufFile"/> returns.
/// </summary>
public sealed class GgufWriter
{
    private const int Alignment = 32;
    private readonly List<(string Key, object Value)> _metadata = [];
    private readonly List<(string Name, long[] Dimensions, GgmlType Type, byte[] Data)> _tensors = [];

    public void Add(string key, object value) => _metadata.Add((key, value));

    /// <summary>Adds a tensor of float32 values, stored as <paramref name="type"/>. Dimensions in ggml order (innermost first).</summary>
    public void AddTensor(string name, long[] dimensions, ReadOnlySpan<float> values, GgmlType type = GgmlType.F32) =>
        _tensors.Add((name, dimensions, type, Encode(values, type)));

    public void AddRawTensor(string name, long[] dimensions, GgmlType type, byte[] data) => _tensors.Add((name, dimensions, type, data));

    public static byte[] Encode(ReadOnlySpan<float> values, GgmlType type)
    {
        switch (type)
        {
            case GgmlType.F32:
                return MemoryMarshal.AsBytes(values).ToArray();
            case GgmlType.F16:
                var halves = new Half[values.Length];
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, halves);
                return MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
            case GgmlType.BF16:
                var bf = new ushort[values.Length];
                for (int i = 0; i < values.Length; i++)
                {
                    bf[i] = ToBFloat16(values[i]);
                }

                return MemoryMarshal.AsBytes(bf.AsSpan()).ToArray();
            case GgmlType.Q8_0:
                return QuantizeQ8(values);
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported tensor type");
        }
    }

    /// <summary>Round to nearest even, as PyTorch and ggml do.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return 0x7FC0;
        }

        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>ggml's reference Q8_0 quantizer: scale = max|x| / 127, q = round(x / scale).</summary>
    public static byte[] QuantizeQ8(ReadOnlySpan<float> values)
    {
        const int Block = WeightTypeInfo.Q8BlockSize;
        if (values.Length % Block != 0)
        {
            throw new ArgumentException($"Q8_0 needs a multiple of {Block} values", nameof(values));
        }

        var result = new byte[values.Length / Block * WeightTypeInfo.Q8BlockBytes];
        for (int b = 0; b < values.Length / Block; b++)
        {
            var block = values.Slice(b * Block, Block);
            float amax = 0;
            foreach (float v in block)
            {
                amax = MathF.Max(amax, MathF.Abs(v));
            }

            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var dst = result.AsSpan(b * WeightTypeInfo.Q8BlockBytes);
            MemoryMarshal.Write(dst, (Half)d);
            for (int i = 0; i < Block; i++)
            {
                dst[2 + i] = (byte)(sbyte)MathF.Round(block[i] * id);
            }
        }

        return result;
    }

    public void WriteTo(string path)
    {
        using var stream = File.Create(path);
        WriteTo(stream);
    }

    public void WriteTo(Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(0x46554747u);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            WriteValue(w, value);
        }

        long offset = 0;
        foreach (var (name, dims, type, data) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (long d in dims)
            {
                w.Write((ulong)d);
            }

            w.Write((uint)type);
            w.Write((ulong)offset);
            offset = Align(offset + data.Length);
        }

        Pad(w);
        foreach (var (_, _, _, data) in _tensors)
        {
            w.Write(data);
            Pad(w);
        }

    }

    private static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        long pos = w.BaseStream.Position;
        for (long i = pos; i < Align(pos); i++)
        {
            w.Write((byte)0);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, object value)
    {
        switch (value)
        {
            case string s:
                w.Write((uint)GgufValueType.String);
                WriteString(w, s);
                break;
            case bool b:
                w.Write((uint)GgufValueType.Bool);
                w.Write(b ? (byte)1 : (byte)0);
                break;
            case int i:
                w.Write((uint)GgufValueType.Int32);
                w.Write(i);
                break;
            case uint u:
                w.Write((uint)GgufValueType.UInt32);
                w.Write(u);
                break;
            case long l:
                w.Write((uint)GgufValueType.Int64);
                w.Write(l);
                break;
            case float f:
                w.Write((uint)GgufValueType.Float32);
                w.Write(f);
                break;
            case double d:
                w.Write((uint)GgufValueType.Float64);
                w.Write(d);
                break;
            case string[] strings:
                WriteArrayHeader(w, GgufValueType.String, strings.Length);
                foreach (var s in strings)
                {
                    WriteString(w, s);
                }

                break;
            case float[] floats:
                WriteArrayHeader(w, GgufValueType.Float32, floats.Length);
                foreach (float f in floats)
                {
                    w.Write(f);
                }

                break;
            case int[] ints:
                WriteArrayHeader(w, GgufValueType.Int32, ints.Length);
                foreach (int i in ints)
                {
                    w.Write(i);
                }

                break;
            case long[] longs:
                WriteArrayHeader(w, GgufValueType.Int64, longs.Length);
                foreach (long l in longs)
                {
                    w.Write(l);
                }

                break;
            default:
                throw new ArgumentException($"unsupported GGUF metadata value of type {value.GetType().Name}", nameof(value));
        }
    }

    private static void WriteArrayHeader(BinaryWriter w, GgufValueType elementType, int count)
    {
        w.Write((uint)GgufValueType.Array);
        w.Write((uint)elementType);
        w.Write((ulong)count);
    }
}
