using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kiln.Runtime.Tensors.Quants;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// Dot products over rows of a ggml block type (Q4_0..Q5_1, the K-quants), read in their stored form: block b of each
/// of the four rows is decoded into an L1-resident buffer (4 x 256 floats at most) and consumed at once, so the
/// weights cross memory once, quantized, and are never widened in memory. Per (row, token) the operations are exactly
/// <c>FloatDot&lt;F32Row&gt;</c>'s over the decoded row (one 8-lane FMA accumulator over the row, summed at the end), so
/// this kernel, the multi-token path over decoded rows and a float32 reference of the decoded weights agree bit for
/// bit. Rows are whole blocks, a multiple of 8 values, so there is no tail.
/// </summary>
internal readonly unsafe struct BlockDot<TFormat> : IDotKernel
    where TFormat : IBlockFormat
{
    private const int MaxBlockValues = 256;

    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    public static void Rows4Tokens2<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x0, float* x1, int n, float* y0, float* y1)
        where TPrefetch : IPrefetch
    {
        float* decoded = stackalloc float[4 * MaxBlockValues];
        int values = TFormat.BlockValues;
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        for (int c = 0; c < n; c += values)
        {
            Decode4<TPrefetch>(w0, w1, w2, w3, c, decoded);
            for (int i = 0; i < values; i += 8)
            {
                var v0 = Avx.LoadVector256(x0 + c + i);
                var v1 = Avx.LoadVector256(x1 + c + i);
                var r = Avx.LoadVector256(decoded + i);
                a00 = Fma.MultiplyAdd(r, v0, a00);
                a01 = Fma.MultiplyAdd(r, v1, a01);
                r = Avx.LoadVector256(decoded + MaxBlockValues + i);
                a10 = Fma.MultiplyAdd(r, v0, a10);
                a11 = Fma.MultiplyAdd(r, v1, a11);
                r = Avx.LoadVector256(decoded + (2 * MaxBlockValues) + i);
                a20 = Fma.MultiplyAdd(r, v0, a20);
                a21 = Fma.MultiplyAdd(r, v1, a21);
                r = Avx.LoadVector256(decoded + (3 * MaxBlockValues) + i);
                a30 = Fma.MultiplyAdd(r, v0, a30);
                a31 = Fma.MultiplyAdd(r, v1, a31);
            }
        }

        y0[0] = Vector256.Sum(a00);
        y0[1] = Vector256.Sum(a10);
        y0[2] = Vector256.Sum(a20);
        y0[3] = Vector256.Sum(a30);
        y1[0] = Vector256.Sum(a01);
        y1[1] = Vector256.Sum(a11);
        y1[2] = Vector256.Sum(a21);
        y1[3] = Vector256.Sum(a31);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    public static void Rows4Tokens1<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x, int n, float* y)
        where TPrefetch : IPrefetch
    {
        float* decoded = stackalloc float[4 * MaxBlockValues];
        int values = TFormat.BlockValues;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int c = 0; c < n; c += values)
        {
            Decode4<TPrefetch>(w0, w1, w2, w3, c, decoded);
            for (int i = 0; i < values; i += 8)
            {
                var v = Avx.LoadVector256(x + c + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(decoded + i), v, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(decoded + MaxBlockValues + i), v, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(decoded + (2 * MaxBlockValues) + i), v, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(decoded + (3 * MaxBlockValues) + i), v, a3);
            }
        }

        y[0] = Vector256.Sum(a0);
        y[1] = Vector256.Sum(a1);
        y[2] = Vector256.Sum(a2);
        y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    public static float Row1(byte* w, float* x, int n)
    {
        float* decoded = stackalloc float[MaxBlockValues];
        int values = TFormat.BlockValues;
        Vector256<float> a = default;
        for (int c = 0; c < n; c += values, w += TFormat.BlockBytes)
        {
            TFormat.Dequantize(w, decoded);
            for (int i = 0; i < values; i += 8)
            {
                a = Fma.MultiplyAdd(Avx.LoadVector256(decoded + i), Avx.LoadVector256(x + c + i), a);
            }
        }

        return Vector256.Sum(a);
    }

    /// <summary>Decodes the block holding column <paramref name="column"/> of each row into rows of the buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Decode4<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, int column, float* decoded)
        where TPrefetch : IPrefetch
    {
        long offset = (long)(column / TFormat.BlockValues) * TFormat.BlockBytes;
        if (TPrefetch.Enabled)
        {
            for (int line = 0; line < TFormat.BlockBytes; line += 64)
            {
                DotKernels.PrefetchNextGroup(w0, w1, w2, w3, offset + line);
            }
        }

        TFormat.Dequantize(w0 + offset, decoded);
        TFormat.Dequantize(w1 + offset, decoded + MaxBlockValues);
        TFormat.Dequantize(w2 + offset, decoded + (2 * MaxBlockValues));
        TFormat.Dequantize(w3 + offset, decoded + (3 * MaxBlockValues));
    }
}
