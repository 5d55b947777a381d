using System.Runtime.Intrinsics.X86;
using Kiln.Runtime.Cpu;

namespace Kiln.Tests.Kernels;

public class HalfConversionTests
{
    /// <summary>The in-register conversion must equal (float)Half for every one of the 65536 bit patterns.</summary>
    [Fact]
    public unsafe void Widen8_AllBitPatterns_EqualsHalfCast()
    {
        Assert.SkipUnless(Avx2.IsSupported && Fma.IsSupported, "needs AVX2 and FMA");
        short* eight = stackalloc short[8];
        for (int start = 0; start <= ushort.MaxValue; start += 8)
        {
            for (int k = 0; k < 8; k++)
            {
                eight[k] = (short)(start + k);
            }

            var widened = HalfConversion.Widen8(eight);
            for (int k = 0; k < 8; k++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(start + k));
                AssertSame(expected, widened[k], start + k);
            }
        }
    }

    [Fact]
    public void ToSingle_AllBitPatterns_EqualsHalfCast()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            AssertSame((float)BitConverter.UInt16BitsToHalf((ushort)bits), HalfConversion.ToSingle((ushort)bits), bits);
        }
    }

    /// <summary>Bit-identical, except that any NaN stands for any NaN (a NaN payload does not survive arithmetic anyway).</summary>
    private static void AssertSame(float expected, float actual, int bits)
    {
        if (float.IsNaN(expected))
        {
            Assert.True(float.IsNaN(actual), $"0x{bits:X4}: expected NaN, got {actual}");
            return;
        }

        Assert.True(
            BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual),
            $"0x{bits:X4}: expected {expected:R} (0x{BitConverter.SingleToUInt32Bits(expected):X8}), got {actual:R} (0x{BitConverter.SingleToUInt32Bits(actual):X8})");
    }
}
