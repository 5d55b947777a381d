using System.Runtime.InteropServices;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Tensors.Quants;

namespace Kiln.Runtime.Synthetic;

/// <summary>
/// Random tensors of a ggml block type (Q4_0..Q5_1, the K-quants) for synthetic models: random bytes in every value,
/// sub-scale and bit field (any byte pattern is a valid block, so every packing case occurs), with each block's f16
/// scales chosen so that values have roughly the standard deviation asked for. These are not quantized float weights
/// (Kiln writes no quantizer: llama.cpp's makes real files in the tests); they exercise the decoders and kernels.
/// </summary>
internal static class RandomBlocks
{
    public static bool Supports(GgmlType type) => Layout(type).BlockBytes > 0;

    /// <summary>The bytes of <paramref name="count"/> values (a multiple of the block) of <paramref name="type"/>.</summary>
    public static byte[] Generate(GgmlType type, long count, float std, int seed)
    {
        var (values, blockBytes, scaleAt, minAt, spread, minRatio) = Layout(type);
        if (count % values != 0)
        {
            throw new ArgumentException($"{count} values are not whole {type} blocks of {values}", nameof(count));
        }

        var bytes = new byte[checked(count / values * blockBytes)];
        var random = new Random(seed);
        random.NextBytes(bytes);
        var d = (Half)(std / spread);
        for (int block = 0; block < bytes.Length / blockBytes; block++)
        {
            var span = bytes.AsSpan(block * blockBytes, blockBytes);
            MemoryMarshal.Write(span[scaleAt..], d);
            if (minAt >= 0)
            {
                MemoryMarshal.Write(span[minAt..], (Half)((float)d * minRatio));
            }

            CentreGroups(type, span, random);
        }

        return bytes;
    }

    /// <summary>
    /// Gives each group of a K type-1 block a minimum equal to its scale, so that with dmin = d * mean(q) every group
    /// is centred on zero (random minimums would give groups of widely different means, an ill-conditioned model).
    /// </summary>
    private static void CentreGroups(GgmlType type, Span<byte> block, Random random)
    {
        switch (type)
        {
            case GgmlType.Q2_K:
                for (int g = 0; g < 16; g++)
                {
                    int scale = random.Next(4, 16);
                    block[g] = (byte)(scale | (scale << 4));
                }

                break;
            case GgmlType.Q4_K or GgmlType.Q5_K:
                var packed = block.Slice(4, 12);
                for (int g = 0; g < 8; g++)
                {
                    int scale = random.Next(16, 64);
                    if (g < 4)
                    {
                        packed[g] = (byte)((packed[g] & 0xC0) | scale);
                        packed[g + 4] = (byte)((packed[g + 4] & 0xC0) | scale);
                    }
                    else
                    {
                        packed[g + 4] = (byte)((scale & 0xF) | ((scale & 0xF) << 4));
                        packed[g - 4] = (byte)((packed[g - 4] & 0x3F) | ((scale >> 4) << 6));
                        packed[g] = (byte)((packed[g] & 0x3F) | ((scale >> 4) << 6));
                    }
                }

                break;
        }
    }

    /// <summary>The values of blocks of <paramref name="type"/>, decoded as Kiln reads them.</summary>
    public static unsafe float[] Decode(GgmlType type, byte[] blocks)
    {
        var layout = Layout(type);
        var values = new float[blocks.Length / layout.BlockBytes * layout.Values];
        var weightType = GgmlTypes.ToWeightType(type)!.Value;
        fixed (byte* source = blocks)
        fixed (float* destination = values)
        {
            BlockDequantizer.Row(weightType, source, destination, values.Length);
        }

        return values;
    }

    /// <summary>
    /// Values and bytes a block; where its f16 scale d sits and its f16 minimum (-1: none); the standard deviation of a
    /// value over d (from the ranges of the random values and sub-scales); and the minimum over d that centres type-1
    /// values (minus for Q4_1 and Q5_1, whose minimum is added; plus for the K kinds, whose minimum is subtracted).
    /// </summary>
    private static (int Values, int BlockBytes, int ScaleAt, int MinAt, float Spread, float MinRatio) Layout(GgmlType type) => type switch
    {
        GgmlType.Q4_0 => (32, 18, 0, -1, 4.6f, 0),
        GgmlType.Q4_1 => (32, 20, 0, 2, 4.6f, -7.5f),
        GgmlType.Q5_0 => (32, 22, 0, -1, 9.2f, 0),
        GgmlType.Q5_1 => (32, 24, 0, 2, 9.2f, -15.5f),
        GgmlType.Q2_K => (256, 84, 80, 82, 10f, 1.5f),
        GgmlType.Q3_K => (256, 110, 108, -1, 37f, 0),
        GgmlType.Q4_K => (256, 144, 0, 2, 145f, 7.5f),
        GgmlType.Q5_K => (256, 176, 0, 2, 290f, 15.5f),
        GgmlType.Q6_K => (256, 210, 208, -1, 1180f, 0),
        _ => (0, 0, 0, 0, 0, 0),
    };
}
