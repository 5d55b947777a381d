using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static Kiln.Runtime.Tensors.Quants.BlockBits;

namespace Kiln.Runtime.Tensors.Quants;

/// <summary>
/// ggml's original 32-value blocks (ggml-common.h). In each, byte j of the 16 packed bytes holds value j in its low
/// nibble and value j + 16 in its high nibble. "Type-0" blocks (Q4_0, Q5_0) decode as d * q with q centred on zero,
/// "type-1" blocks (Q4_1, Q5_1) as d * q + m. Q5 blocks keep the fifth bit of value j in bit j of a 32-bit word.
/// </summary>
internal static class LegacyBlocks
{
    /// <summary>Q4_0: f16 d; 16 bytes of nibbles. Value = (q - 8) * d.</summary>
    internal readonly unsafe struct Q4_0 : IBlockFormat
    {
        public static int BlockValues => 32;

        public static int BlockBytes => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block);
            if (Wide)
            {
                var centred = Vector512.Create(-8f, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
                var bytes = Bytes16(block + 2);
                Scaled16(Lookup(centred, bytes), d, destination);
                Scaled16(Lookup(centred, Vector512.ShiftRightLogical(bytes, 4)), d, destination + 16);
                return;
            }

            var eight = Vector256.Create(8);
            for (int h = 0; h < 16; h += 8)
            {
                var q = Bytes8(block + 2 + h);
                Scaled((q & Vector256.Create(15)) - eight, d, destination + h);
                Scaled(Vector256.ShiftRightLogical(q, 4) - eight, d, destination + 16 + h);
            }
        }
    }

    /// <summary>Q4_1: f16 d, f16 m; 16 bytes of nibbles. Value = q * d + m.</summary>
    internal readonly unsafe struct Q4_1 : IBlockFormat
    {
        public static int BlockValues => 32;

        public static int BlockBytes => 20;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block), m = Half(block + 2);
            for (int h = 0; h < 16; h += 8)
            {
                var q = Bytes8(block + 4 + h);
                ScaledPlus(q & Vector256.Create(15), d, m, destination + h);
                ScaledPlus(Vector256.ShiftRightLogical(q, 4), d, m, destination + 16 + h);
            }
        }
    }

    /// <summary>Q5_0: f16 d; u32 fifth bits; 16 bytes of nibbles. Value = (q - 16) * d.</summary>
    internal readonly unsafe struct Q5_0 : IBlockFormat
    {
        public static int BlockValues => 32;

        public static int BlockBytes => 22;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block);
            uint high = Unsafe.ReadUnaligned<uint>(block + 2);
            var sixteen = Vector256.Create(16);
            for (int h = 0; h < 16; h += 8)
            {
                var q = Bytes8(block + 6 + h);
                Scaled(((q & Vector256.Create(15)) | HighBits(high, h, 16)) - sixteen, d, destination + h);
                Scaled((Vector256.ShiftRightLogical(q, 4) | HighBits(high, 16 + h, 16)) - sixteen, d, destination + 16 + h);
            }
        }
    }

    /// <summary>Q5_1: f16 d, f16 m; u32 fifth bits; 16 bytes of nibbles. Value = q * d + m.</summary>
    internal readonly unsafe struct Q5_1 : IBlockFormat
    {
        public static int BlockValues => 32;

        public static int BlockBytes => 24;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block), m = Half(block + 2);
            uint high = Unsafe.ReadUnaligned<uint>(block + 4);
            for (int h = 0; h < 16; h += 8)
            {
                var q = Bytes8(block + 8 + h);
                ScaledPlus((q & Vector256.Create(15)) | HighBits(high, h, 16), d, m, destination + h);
                ScaledPlus(Vector256.ShiftRightLogical(q, 4) | HighBits(high, 16 + h, 16), d, m, destination + 16 + h);
            }
        }
    }

    /// <summary>Q8_0: f16 d; 32 int8 values. Value = q * d.</summary>
    internal readonly unsafe struct Q8_0 : IBlockFormat
    {
        public static int BlockValues => 32;

        public static int BlockBytes => 34;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dequantize(byte* block, float* destination)
        {
            float d = Half(block);
            for (int h = 0; h < 32; h += 8)
            {
                Scaled(Signed8(block + 2 + h), d, destination + h);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> Signed8(byte* p) =>
            Avx2.IsSupported
                ? Avx2.ConvertToVector256Int32((sbyte*)p)
                : Vector256.Create((sbyte)p[0], (sbyte)p[1], (sbyte)p[2], (sbyte)p[3], (sbyte)p[4], (sbyte)p[5], (sbyte)p[6], (sbyte)p[7]);
    }
}
