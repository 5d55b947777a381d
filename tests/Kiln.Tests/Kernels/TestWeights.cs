using System.Runtime.InteropServices;
using Kiln.Runtime.Tensors;

namespace Kiln.Tests.Kernels;

/// <summary>A random weight matrix of a given storage type in native memory, freed on dispose.</summary>
public sealed unsafe class TestWeights : IDisposable
{
    private readonly byte* _data;

    public TestWeights(WeightType type, int rows, int columns, int seed)
    {
        long bytes = WeightTypeInfo.RowBytes(type, columns) * rows;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
        var random = new Random(seed);
        var span = new Span<byte>(_data, (int)bytes);
        switch (type)
        {
            case WeightType.F32:
                var floats = MemoryMarshal.Cast<byte, float>(span);
                for (int i = 0; i < floats.Length; i++)
                {
                    floats[i] = random.Next(10) == 0 ? 0f : (float)((random.NextDouble() * 2) - 1);
                }

                break;
            case WeightType.F16:
                var halves = MemoryMarshal.Cast<byte, ushort>(span);
                for (int i = 0; i < halves.Length; i++)
                {
                    halves[i] = RandomHalf(random);
                }

                break;
            case WeightType.BF16:
                var brains = MemoryMarshal.Cast<byte, ushort>(span);
                for (int i = 0; i < brains.Length; i++)
                {
                    brains[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)((random.NextDouble() * 2) - 1) * 0.1f) >> 16);
                }

                break;
            case WeightType.Q8_0:
                for (int block = 0; block < bytes / WeightTypeInfo.Q8BlockBytes; block++)
                {
                    var b = span.Slice(block * WeightTypeInfo.Q8BlockBytes, WeightTypeInfo.Q8BlockBytes);
                    var scale = (Half)((random.NextDouble() * 0.02) + 1e-4);
                    MemoryMarshal.Write(b, BitConverter.HalfToUInt16Bits(scale));
                    for (int k = 0; k < WeightTypeInfo.Q8BlockSize; k++)
                    {
                        b[2 + k] = (byte)(sbyte)random.Next(-128, 128);
                    }
                }

                break;
            default:
                RandomBlocks(type, span, random);
                break;
        }

        Matrix = new WeightMatrix($"test.{type}", type, rows, columns, _data);
    }

    public WeightMatrix Matrix { get; }

    /// <summary>Where each block type keeps its f16 scale (first) and, for type-1 kinds, its f16 minimum scale.</summary>
    public static int[] HalfFields(WeightType type) => type switch
    {
        WeightType.Q4_0 or WeightType.Q5_0 => [0],
        WeightType.Q4_1 or WeightType.Q5_1 or WeightType.Q4_K or WeightType.Q5_K => [0, 2],
        WeightType.Q2_K => [80, 82],
        WeightType.Q3_K => [108],
        WeightType.Q6_K => [208],
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>
    /// Random bytes in every value, scale and bit field (any pattern is a valid block), then a small finite f16 in each
    /// block's scale fields, so that every packing case is exercised on values of ordinary size.
    /// </summary>
    private static void RandomBlocks(WeightType type, Span<byte> span, Random random)
    {
        random.NextBytes(span);
        int blockBytes = WeightTypeInfo.BlockBytes(type);
        for (int block = 0; block < span.Length / blockBytes; block++)
        {
            foreach (int at in HalfFields(type))
            {
                var scale = (Half)(((random.NextDouble() * 0.02) + 1e-4) * (random.Next(4) == 0 ? -1 : 1));
                MemoryMarshal.Write(span[((block * blockBytes) + at)..], BitConverter.HalfToUInt16Bits(scale));
            }
        }
    }

    /// <summary>Mostly ordinary weights, with the cases a bit-trick conversion gets wrong mixed in: zeros, subnormals.</summary>
    public static ushort RandomHalf(Random random) => random.Next(16) switch
    {
        0 => (ushort)random.Next(0x0001, 0x0400), // positive subnormal
        1 => (ushort)random.Next(0x8001, 0x8400), // negative subnormal
        2 => (ushort)(random.Next(2) * 0x8000), // +0 or -0
        _ => BitConverter.HalfToUInt16Bits((Half)(NormalSample(random) * 0.05)),
    };

    public void Dispose() => NativeMemory.AlignedFree(_data);

    private static double NormalSample(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
