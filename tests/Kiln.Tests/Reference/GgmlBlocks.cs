using Kiln.Runtime.Formats.Gguf;

namespace Kiln.Tests.Reference;

/// <summary>
/// ggml's block types decoded the plain way, one value at a time, written from ggml-common.h's layouts and the
/// arithmetic of ggml-quants.c's dequantize_row_* (float32 products and sums in the same order), with nothing of Kiln's:
/// the tests' independent reading of a quantized tensor. Slow and obviously correct by comparison with the C.
/// </summary>
public static class GgmlBlocks
{
    /// <summary>Values and bytes of one block of <paramref name="type"/>.</summary>
    public static (int Values, int Bytes) Block(GgmlType type) => type switch
    {
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>All values of a tensor stored as <paramref name="type"/>.</summary>
    public static float[] Decode(GgmlType type, ReadOnlySpan<byte> data, long count)
    {
        var (values, bytes) = Block(type);
        var result = new float[count];
        for (long b = 0; b < count / values; b++)
        {
            DecodeBlock(type, data.Slice((int)(b * bytes), bytes), result.AsSpan((int)(b * values), values));
        }

        return result;
    }

    public static void DecodeBlock(GgmlType type, ReadOnlySpan<byte> x, Span<float> y)
    {
        switch (type)
        {
            case GgmlType.F32: y[0] = BitConverter.ToSingle(x); break;
            case GgmlType.F16: y[0] = F16(x, 0); break;
            case GgmlType.Q4_0: Q4_0(x, y); break;
            case GgmlType.Q4_1: Q4_1(x, y); break;
            case GgmlType.Q5_0: Q5_0(x, y); break;
            case GgmlType.Q5_1: Q5_1(x, y); break;
            case GgmlType.Q8_0: Q8_0(x, y); break;
            case GgmlType.Q2_K: Q2_K(x, y); break;
            case GgmlType.Q3_K: Q3_K(x, y); break;
            case GgmlType.Q4_K: Q4_K(x, y); break;
            case GgmlType.Q5_K: Q5_K(x, y); break;
            case GgmlType.Q6_K: Q6_K(x, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    private static float F16(ReadOnlySpan<byte> x, int at) => (float)BitConverter.ToHalf(x[at..]);

    // { f16 d; u8 qs[16]; }: value j in the low nibble of qs[j], value j + 16 in its high nibble; (q - 8) * d.
    private static void Q4_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((x[2 + j] & 0xF) - 8) * d;
            y[j + 16] = ((x[2 + j] >> 4) - 8) * d;
        }
    }

    // { f16 d; f16 m; u8 qs[16]; }: q * d + m.
    private static void Q4_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0), m = F16(x, 2);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((x[4 + j] & 0xF) * d) + m;
            y[j + 16] = ((x[4 + j] >> 4) * d) + m;
        }
    }

    // { f16 d; u8 qh[4]; u8 qs[16]; }: bit j of qh is the fifth bit of value j; (q - 16) * d.
    private static void Q5_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0);
        uint qh = BitConverter.ToUInt32(x[2..]);
        for (int j = 0; j < 16; j++)
        {
            int low = (x[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int high = (x[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (low - 16) * d;
            y[j + 16] = (high - 16) * d;
        }
    }

    // { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }: q * d + m.
    private static void Q5_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0), m = F16(x, 2);
        uint qh = BitConverter.ToUInt32(x[4..]);
        for (int j = 0; j < 16; j++)
        {
            int low = (x[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int high = (x[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (low * d) + m;
            y[j + 16] = (high * d) + m;
        }
    }

    // { f16 d; i8 qs[32]; }: q * d.
    private static void Q8_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0);
        for (int j = 0; j < 32; j++)
        {
            y[j] = (sbyte)x[2 + j] * d;
        }
    }

    // { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin; }
    private static void Q2_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 80), min = F16(x, 82);
        int o = 0, scale = 0;
        for (int n = 0; n < 256; n += 128)
        {
            int q = 16 + (n / 4);
            for (int shift = 0; shift < 8; shift += 2)
            {
                for (int part = 0; part < 32; part += 16)
                {
                    int sc = x[scale++];
                    float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                    {
                        y[o++] = (dl * ((x[q + part + l] >> shift) & 3)) - ml;
                    }
                }
            }
        }
    }

    // { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }
    private static void Q3_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float dAll = F16(x, 108);
        var scales = new int[16];
        for (int i = 0; i < 16; i++)
        {
            // Scales 0..7: low nibbles of bytes 0..7, 8..15: their high nibbles; two more bits each from bytes 8..11.
            int low = i < 8 ? x[96 + i] & 0xF : x[96 + i - 8] >> 4;
            int high = (x[96 + 8 + (i % 4)] >> (2 * (i / 4))) & 3;
            scales[i] = (low | (high << 4)) - 32;
        }

        int o = 0, s = 0, bit = 0;
        for (int n = 0; n < 256; n += 128)
        {
            int q = 32 + (n / 4);
            for (int shift = 0; shift < 8; shift += 2, bit++)
            {
                for (int part = 0; part < 32; part += 16)
                {
                    float dl = dAll * scales[s++];
                    for (int l = 0; l < 16; l++)
                    {
                        int value = ((x[q + part + l] >> shift) & 3) - (((x[part + l] >> bit) & 1) != 0 ? 0 : 4);
                        y[o++] = dl * value;
                    }
                }
            }
        }
    }

    private static (int Scale, int Min) ScaleMinK4(ReadOnlySpan<byte> q, int j) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    // { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }
    private static void Q4_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0), min = F16(x, 2);
        var packed = x.Slice(4, 12);
        int o = 0;
        for (int j = 0; j < 4; j++)
        {
            var (s1, m1) = ScaleMinK4(packed, 2 * j);
            var (s2, m2) = ScaleMinK4(packed, (2 * j) + 1);
            float d1 = d * s1, min1 = min * m1, d2 = d * s2, min2 = min * m2;
            for (int l = 0; l < 32; l++)
            {
                y[o++] = (d1 * (x[16 + (32 * j) + l] & 0xF)) - min1;
            }

            for (int l = 0; l < 32; l++)
            {
                y[o++] = (d2 * (x[16 + (32 * j) + l] >> 4)) - min2;
            }
        }
    }

    // { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
    private static void Q5_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 0), min = F16(x, 2);
        var packed = x.Slice(4, 12);
        int o = 0;
        for (int j = 0; j < 4; j++)
        {
            var (s1, m1) = ScaleMinK4(packed, 2 * j);
            var (s2, m2) = ScaleMinK4(packed, (2 * j) + 1);
            float d1 = d * s1, min1 = min * m1, d2 = d * s2, min2 = min * m2;
            for (int l = 0; l < 32; l++)
            {
                int q = (x[48 + (32 * j) + l] & 0xF) + ((x[16 + l] & (1 << (2 * j))) != 0 ? 16 : 0);
                y[o++] = (d1 * q) - min1;
            }

            for (int l = 0; l < 32; l++)
            {
                int q = (x[48 + (32 * j) + l] >> 4) + ((x[16 + l] & (2 << (2 * j))) != 0 ? 16 : 0);
                y[o++] = (d2 * q) - min2;
            }
        }
    }

    // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
    private static void Q6_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = F16(x, 208);
        for (int n = 0; n < 2; n++)
        {
            int ql = 64 * n, qh = 128 + (32 * n), sc = 192 + (8 * n), o = 128 * n;
            for (int l = 0; l < 32; l++)
            {
                int g = l / 16;
                int q1 = ((x[ql + l] & 0xF) | (((x[qh + l] >> 0) & 3) << 4)) - 32;
                int q2 = ((x[ql + l + 32] & 0xF) | (((x[qh + l] >> 2) & 3) << 4)) - 32;
                int q3 = ((x[ql + l] >> 4) | (((x[qh + l] >> 4) & 3) << 4)) - 32;
                int q4 = ((x[ql + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4)) - 32;
                y[o + l] = d * (sbyte)x[sc + g] * q1;
                y[o + l + 32] = d * (sbyte)x[sc + g + 2] * q2;
                y[o + l + 64] = d * (sbyte)x[sc + g + 4] * q3;
                y[o + l + 96] = d * (sbyte)x[sc + g + 6] * q4;
            }
        }
    }
}
