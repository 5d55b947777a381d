using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Kiln.Runtime.Tensors.Quants.BlockBits;

namespace Kiln.Runtime.Tensors.Quants;

/// <summary>
/// ggml's K-quant super-blocks of 256 values (ggml-common.h, decoded as ggml-quants.c's dequantize_row_*_K): one f16
/// scale d (and for type-1 kinds an f16 dmin) over 8 or 16 groups, each group with its own small integer scale (and
/// minimum). A value is (d * scale) * q for type-0 kinds and (d * scale) * q - dmin * min for type-1 kinds.
/// </summary>
internal static class KBlocks
{
    /// <summary>
    /// Q2_K: 16 bytes of group scales (low nibble scale, high nibble min), 64 bytes of 2-bit values, f16 d, f16 dmin.
    /// Each half of 128 values reads 32 bytes four times, two bits further each time; 16 values a group.
    /// </summary>
    internal readonly unsafe struct Q2_K : IBlockFormat
    {
        public static int BlockValues => 256;

        public static int BlockBytes => 84;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            byte* scales = block;
            float d = Half(block + 80), dmin = Half(block + 82);
            var three = Vector256.Create(3);
            int group = 0;
            for (int half = 0; half < 2; half++)
            {
                byte* q = block + 16 + (32 * half);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int part = 0; part < 32; part += 16, group++, destination += 16)
                    {
                        byte sc = scales[group];
                        float scale = d * (sc & 0xF), min = dmin * (sc >> 4);
                        ScaledPlus(Vector256.ShiftRightLogical(Bytes8(q + part), shift) & three, scale, -min, destination);
                        ScaledPlus(Vector256.ShiftRightLogical(Bytes8(q + part + 8), shift) & three, scale, -min, destination + 8);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Q3_K: 32 bytes of high bits, 64 bytes of low 2-bit values, 12 bytes of 16 packed 6-bit scales, f16 d. Laid out as
    /// Q2_K's values, plus a third bit: value = low - 4 unless its high bit is set, bit b of hmask[l] for pass b.
    /// </summary>
    internal readonly unsafe struct Q3_K : IBlockFormat
    {
        public static int BlockValues => 256;

        public static int BlockBytes => 110;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            byte* highBits = block;
            float d = Half(block + 108);
            var scales = UnpackScales(block + 96);
            var three = Vector256.Create(3);
            var four = Vector256.Create(4);
            int group = 0, pass = 0;
            for (int half = 0; half < 2; half++)
            {
                byte* q = block + 32 + (32 * half);
                for (int shift = 0; shift < 8; shift += 2, pass++)
                {
                    for (int part = 0; part < 32; part += 16, group++, destination += 16)
                    {
                        float scale = d * (scales[group] - 32);
                        for (int h = 0; h < 16; h += 8)
                        {
                            var low = Vector256.ShiftRightLogical(Bytes8(q + part + h), shift) & three;
                            var high = Vector256.ShiftRightLogical(Bytes8(highBits + part + h), pass) & Vector256<int>.One;
                            Scaled(low - (four & (high - Vector256<int>.One)), scale, destination + h); // -4 where the bit is clear
                        }
                    }
                }
            }
        }

        /// <summary>
        /// The 16 scales: the low nibbles of bytes 0..7 are scales 0..7, their high nibbles scales 8..15, and bytes 8..11
        /// hold the two high bits of each, scale i's in bits 2*(i / 4)..+1 of byte 8 + i % 4.
        /// </summary>
        private static Scales16 UnpackScales(byte* packed)
        {
            var result = default(Scales16);
            for (int i = 0; i < 16; i++)
            {
                int low = i < 8 ? packed[i] & 0xF : packed[i - 8] >> 4;
                int high = (packed[8 + (i % 4)] >> (2 * (i / 4))) & 3;
                result[i] = (sbyte)(low | (high << 4));
            }

            return result;
        }
    }

    /// <summary>
    /// Q4_K: f16 d, f16 dmin, 12 bytes of 8 packed 6-bit scales and mins, 128 bytes of nibbles. Each 32 bytes hold two
    /// groups of 32: the low nibbles the first, the high nibbles the second.
    /// </summary>
    internal readonly unsafe struct Q4_K : IBlockFormat
    {
        public static int BlockValues => 256;

        public static int BlockBytes => 144;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block), dmin = Half(block + 2);
            byte* packed = block + 4;
            byte* q = block + 16;
            var fifteen = Vector256.Create(15);
            var nibbles = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for (int group = 0; group < 8; group += 2, q += 32, destination += 64)
            {
                var (s0, m0) = ScaleAndMin(packed, group);
                var (s1, m1) = ScaleAndMin(packed, group + 1);
                float d0 = d * s0, min0 = dmin * m0, d1 = d * s1, min1 = dmin * m1;
                if (Wide)
                {
                    for (int h = 0; h < 32; h += 16)
                    {
                        var v = Bytes16(q + h);
                        ScaledPlus16(Lookup(nibbles, v), d0, -min0, destination + h);
                        ScaledPlus16(Lookup(nibbles, Vector512.ShiftRightLogical(v, 4)), d1, -min1, destination + 32 + h);
                    }

                    continue;
                }

                for (int h = 0; h < 32; h += 8)
                {
                    var v = Bytes8(q + h);
                    ScaledPlus(v & fifteen, d0, -min0, destination + h);
                    ScaledPlus(Vector256.ShiftRightLogical(v, 4), d1, -min1, destination + 32 + h);
                }
            }
        }

        /// <summary>
        /// Group j's 6-bit scale and min (shared by Q4_K and Q5_K): for j &lt; 4 the low 6 bits of bytes j and j + 4;
        /// for j &gt;= 4 the nibbles of byte j + 4 with the top two bits of bytes j - 4 and j above them.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static (int Scale, int Min) ScaleAndMin(byte* packed, int j) => j < 4
            ? (packed[j] & 63, packed[j + 4] & 63)
            : ((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4), (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
    }

    /// <summary>
    /// Q5_K: as Q4_K with 32 bytes of fifth bits after the scales: for the pair of groups p, bit 2p of byte l is the fifth
    /// bit of value l of the first group, bit 2p + 1 of the second.
    /// </summary>
    internal readonly unsafe struct Q5_K : IBlockFormat
    {
        public static int BlockValues => 256;

        public static int BlockBytes => 176;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block), dmin = Half(block + 2);
            byte* packed = block + 4;
            byte* highBits = block + 16;
            byte* q = block + 48;
            var fifteen = Vector256.Create(15);
            var sixteen = Vector256.Create(16);
            for (int group = 0; group < 8; group += 2, q += 32, destination += 64)
            {
                var (s0, m0) = Q4_K.ScaleAndMin(packed, group);
                var (s1, m1) = Q4_K.ScaleAndMin(packed, group + 1);
                float d0 = d * s0, min0 = dmin * m0, d1 = d * s1, min1 = dmin * m1;
                for (int h = 0; h < 32; h += 8)
                {
                    var v = Bytes8(q + h);
                    var high = Bytes8(highBits + h);
                    var high0 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(high, group), 4) & sixteen;
                    var high1 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(high, group + 1), 4) & sixteen;
                    ScaledPlus((v & fifteen) | high0, d0, -min0, destination + h);
                    ScaledPlus(Vector256.ShiftRightLogical(v, 4) | high1, d1, -min1, destination + 32 + h);
                }
            }
        }
    }

    /// <summary>
    /// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 group scales, f16 d. Each half of 128
    /// values reads 64 low bytes and 32 high bytes: value l + 32k takes nibble (k / 2) of low byte l + 32 (k % 2) and bits
    /// 2k..2k+1 of high byte l, less 32; groups are 16 values.
    /// </summary>
    internal readonly unsafe struct Q6_K : IBlockFormat
    {
        public static int BlockValues => 256;

        public static int BlockBytes => 210;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block + 208);
            sbyte* scales = (sbyte*)(block + 192);
            var fifteen = Vector256.Create(15);
            var three = Vector256.Create(3);
            var offset = Vector256.Create(32);
            for (int half = 0; half < 2; half++, destination += 128, scales += 8)
            {
                byte* low = block + (64 * half);
                byte* high = block + 128 + (32 * half);
                if (Wide)
                {
                    var fifteen16 = Vector512.Create(15);
                    var three16 = Vector512.Create(3);
                    var offset16 = Vector512.Create(32);
                    for (int l = 0; l < 32; l += 16)
                    {
                        int g = l / 16;
                        var lowA = Bytes16(low + l);
                        var lowB = Bytes16(low + 32 + l);
                        var h = Bytes16(high + l);
                        Scaled16(Vector512.ConvertToSingle(((lowA & fifteen16) | Vector512.ShiftLeft(h & three16, 4)) - offset16), d * scales[g], destination + l);
                        Scaled16(Vector512.ConvertToSingle(((lowB & fifteen16) | Vector512.ShiftLeft(Vector512.ShiftRightLogical(h, 2) & three16, 4)) - offset16), d * scales[g + 2], destination + 32 + l);
                        Scaled16(Vector512.ConvertToSingle((Vector512.ShiftRightLogical(lowA, 4) | Vector512.ShiftLeft(Vector512.ShiftRightLogical(h, 4) & three16, 4)) - offset16), d * scales[g + 4], destination + 64 + l);
                        Scaled16(Vector512.ConvertToSingle((Vector512.ShiftRightLogical(lowB, 4) | Vector512.ShiftLeft(Vector512.ShiftRightLogical(h, 6), 4)) - offset16), d * scales[g + 6], destination + 96 + l);
                    }

                    continue;
                }

                for (int l = 0; l < 32; l += 8)
                {
                    int g = l / 16;
                    var lowA = Bytes8(low + l);
                    var lowB = Bytes8(low + 32 + l);
                    var h = Bytes8(high + l);
                    Scaled(((lowA & fifteen) | Vector256.ShiftLeft(h & three, 4)) - offset, d * scales[g], destination + l);
                    Scaled(((lowB & fifteen) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 2) & three, 4)) - offset, d * scales[g + 2], destination + 32 + l);
                    Scaled((Vector256.ShiftRightLogical(lowA, 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 4) & three, 4)) - offset, d * scales[g + 4], destination + 64 + l);
                    Scaled((Vector256.ShiftRightLogical(lowB, 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 6), 4)) - offset, d * scales[g + 6], destination + 96 + l);
                }
            }
        }
    }

    [InlineArray(16)]
    private struct Scales16
    {
        private sbyte _element;
    }
}
