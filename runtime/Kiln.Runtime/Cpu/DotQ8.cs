using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Cpu;

/// <summary>Where the dot kernels find a Q8_0 block's 32 values and its scale.</summary>
internal unsafe interface IQ8Blocks
{
    /// <summary>Bytes from one block of a row to the next.</summary>
    static abstract int BlockStride { get; }

    /// <summary>Values 8k..8k+7 of the block as float32 (small integers, exact).</summary>
    static abstract Vector256<float> Values(byte* block, int k);

    /// <summary>The block's scale in every lane.</summary>
    static abstract Vector256<float> Scale(byte* block);
}

/// <summary>ggml's stored layout: f16 scale, then 32 int8 values (34 bytes).</summary>
internal readonly unsafe struct Q8Packed : IQ8Blocks
{
    public static int BlockStride => WeightTypeInfo.Q8BlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Values(byte* block, int k) =>
        Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 2 + (8 * k)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(byte* block) => Vector256.Create(HalfConversion.ToSingle(Unsafe.ReadUnaligned<ushort>(block)));
}

/// <summary>
/// A row widened once for a multi-token step: per block 40 floats, the scale in lanes 0..7 and the 32 values as floats
/// at 8..39 (keeps 32-byte alignment). Same values and scales as <see cref="Q8Packed"/>, so the same results.
/// </summary>
internal readonly unsafe struct Q8Widened : IQ8Blocks
{
    public const int BlockFloats = 40;

    public static int BlockStride => BlockFloats * sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Values(byte* block, int k) => Avx.LoadVector256((float*)block + 8 + (8 * k));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(byte* block) => Vector256.Create(*(float*)block);

    /// <summary>Widens a stored Q8_0 row of <paramref name="blocks"/> blocks into <paramref name="destination"/>.</summary>
    public static void Widen(byte* row, float* destination, int blocks)
    {
        for (int b = 0; b < blocks; b++, row += Q8Packed.BlockStride, destination += BlockFloats)
        {
            Avx.Store(destination, Q8Packed.Scale(row));
            for (int k = 0; k < 4; k++)
            {
                Avx.Store(destination + 8 + (8 * k), Q8Packed.Values(row, k));
            }
        }
    }
}

/// <summary>
/// Dot products over Q8_0 rows. Per (row, token) and block: p = sum of the block's 32 value * x products in one 8-lane
/// register (a multiply, then three FMAs), then acc = p * scale + acc, so the scale costs one FMA per block instead of a
/// multiply per value (a float32 reassociation of scale * q * x). The 8 lanes of acc are summed at the end. n is the
/// number of columns, a multiple of 32.
/// </summary>
internal readonly unsafe struct Q8Dot<TBlocks> : IDotKernel
    where TBlocks : IQ8Blocks
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Rows4Tokens2<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x0, float* x1, int n, float* y0, float* y1)
        where TPrefetch : IPrefetch
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        int stride = TBlocks.BlockStride;
        for (int c = 0; c < n; c += 32, w0 += stride, w1 += stride, w2 += stride, w3 += stride)
        {
            if (TPrefetch.Enabled)
            {
                PrefetchNextGroup(w0, w1, w2, w3);
            }

            var v0 = Avx.LoadVector256(x0 + c);
            var v1 = Avx.LoadVector256(x1 + c);
            var r = TBlocks.Values(w0, 0);
            var p00 = r * v0;
            var p01 = r * v1;
            r = TBlocks.Values(w1, 0);
            var p10 = r * v0;
            var p11 = r * v1;
            r = TBlocks.Values(w2, 0);
            var p20 = r * v0;
            var p21 = r * v1;
            r = TBlocks.Values(w3, 0);
            var p30 = r * v0;
            var p31 = r * v1;
            for (int k = 1; k < 4; k++)
            {
                v0 = Avx.LoadVector256(x0 + c + (8 * k));
                v1 = Avx.LoadVector256(x1 + c + (8 * k));
                r = TBlocks.Values(w0, k);
                p00 = Fma.MultiplyAdd(r, v0, p00);
                p01 = Fma.MultiplyAdd(r, v1, p01);
                r = TBlocks.Values(w1, k);
                p10 = Fma.MultiplyAdd(r, v0, p10);
                p11 = Fma.MultiplyAdd(r, v1, p11);
                r = TBlocks.Values(w2, k);
                p20 = Fma.MultiplyAdd(r, v0, p20);
                p21 = Fma.MultiplyAdd(r, v1, p21);
                r = TBlocks.Values(w3, k);
                p30 = Fma.MultiplyAdd(r, v0, p30);
                p31 = Fma.MultiplyAdd(r, v1, p31);
            }

            var s = TBlocks.Scale(w0);
            a00 = Fma.MultiplyAdd(p00, s, a00);
            a01 = Fma.MultiplyAdd(p01, s, a01);
            s = TBlocks.Scale(w1);
            a10 = Fma.MultiplyAdd(p10, s, a10);
            a11 = Fma.MultiplyAdd(p11, s, a11);
            s = TBlocks.Scale(w2);
            a20 = Fma.MultiplyAdd(p20, s, a20);
            a21 = Fma.MultiplyAdd(p21, s, a21);
            s = TBlocks.Scale(w3);
            a30 = Fma.MultiplyAdd(p30, s, a30);
            a31 = Fma.MultiplyAdd(p31, s, a31);
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
    public static void Rows4Tokens1<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x, int n, float* y)
        where TPrefetch : IPrefetch
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int stride = TBlocks.BlockStride;
        for (int c = 0; c < n; c += 32, w0 += stride, w1 += stride, w2 += stride, w3 += stride)
        {
            if (TPrefetch.Enabled)
            {
                PrefetchNextGroup(w0, w1, w2, w3);
            }

            var v = Avx.LoadVector256(x + c);
            var p0 = TBlocks.Values(w0, 0) * v;
            var p1 = TBlocks.Values(w1, 0) * v;
            var p2 = TBlocks.Values(w2, 0) * v;
            var p3 = TBlocks.Values(w3, 0) * v;
            for (int k = 1; k < 4; k++)
            {
                v = Avx.LoadVector256(x + c + (8 * k));
                p0 = Fma.MultiplyAdd(TBlocks.Values(w0, k), v, p0);
                p1 = Fma.MultiplyAdd(TBlocks.Values(w1, k), v, p1);
                p2 = Fma.MultiplyAdd(TBlocks.Values(w2, k), v, p2);
                p3 = Fma.MultiplyAdd(TBlocks.Values(w3, k), v, p3);
            }

            a0 = Fma.MultiplyAdd(p0, TBlocks.Scale(w0), a0);
            a1 = Fma.MultiplyAdd(p1, TBlocks.Scale(w1), a1);
            a2 = Fma.MultiplyAdd(p2, TBlocks.Scale(w2), a2);
            a3 = Fma.MultiplyAdd(p3, TBlocks.Scale(w3), a3);
        }

        y[0] = Vector256.Sum(a0);
        y[1] = Vector256.Sum(a1);
        y[2] = Vector256.Sum(a2);
        y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static float Row1(byte* w, float* x, int n)
    {
        Vector256<float> a = default;
        int stride = TBlocks.BlockStride;
        for (int c = 0; c < n; c += 32, w += stride)
        {
            var p = TBlocks.Values(w, 0) * Avx.LoadVector256(x + c);
            for (int k = 1; k < 4; k++)
            {
                p = Fma.MultiplyAdd(TBlocks.Values(w, k), Avx.LoadVector256(x + c + (8 * k)), p);
            }

            a = Fma.MultiplyAdd(p, TBlocks.Scale(w), a);
        }

        return Vector256.Sum(a);
    }

    /// <summary>The same block of the next four rows, every cache line of it (one for a packed block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchNextGroup(byte* w0, byte* w1, byte* w2, byte* w3)
    {
        for (int offset = 0; offset < TBlocks.BlockStride; offset += 64)
        {
            DotKernels.PrefetchNextGroup(w0, w1, w2, w3, offset);
        }
    }
}
