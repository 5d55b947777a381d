using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// The register-blocked dot products of one weight format, as the matrix kernel calls them: 4 rows against 2 tokens
/// (every loaded vector feeds several FMAs, where one row against one token is bound by loads), 4 rows against 1 token,
/// and a single row for the rows left over when a tile is not a multiple of 4. Every (row, token) result is computed by
/// the same sequence of operations whichever of the three runs it, so the output does not depend on how many tokens
/// share a step. <c>n</c> is the number of columns; rows are raw pointers into the stored (or widened) data.
/// Implementations are NoInlining: inlined into the tile loop (which tiered PGO did), the prefill kernels ran 15-30%
/// slower on the bench model; each call does hundreds of cycles of work, so the call itself costs nothing measurable.
/// </summary>
internal unsafe interface IDotKernel
{
    static abstract void Rows4Tokens2<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x0, float* x1, int n, float* y0, float* y1)
        where TPrefetch : IPrefetch;

    static abstract void Rows4Tokens1<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x, int n, float* y)
        where TPrefetch : IPrefetch;

    static abstract float Row1(byte* w, float* x, int n);
}

/// <summary>
/// Whether a 4-row kernel prefetches the next four rows (<see cref="DotKernels.PrefetchNextGroup"/>): only on the
/// first pass over rows read from memory. A type argument, so that the kernels without it carry no test at all.
/// </summary>
internal interface IPrefetch
{
    static abstract bool Enabled { get; }
}

internal readonly struct Prefetch : IPrefetch
{
    public static bool Enabled => true;
}

internal readonly struct NoPrefetch : IPrefetch
{
    public static bool Enabled => false;
}

internal static unsafe class DotKernels
{
    /// <summary>Whether the vector kernels run here; otherwise the matrix kernel widens rows and uses <see cref="Dot"/>.</summary>
    public static bool Blocked => Fma.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Prefetches the cache line at <paramref name="offset"/> in each of the next four rows (the next group of the tile,
    /// rows being evenly spaced). The 4-row kernels walk four interleaved streams that restart every few KB, which the
    /// hardware prefetchers pick up late: with this one-group-ahead prefetch the bench model's Q8_0 matrices took 25%
    /// less time per decode step, F16 and BF16 10-25% less, F32 (already at memory bandwidth) the same. It costs a few
    /// uops per cache line, so only the first pass over stored rows does it. Prefetches past the end do not fault.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PrefetchNextGroup(byte* w0, byte* w1, byte* w2, byte* w3, long offset)
    {
        long ahead = (4 * (w1 - w0)) + offset;
        Sse.Prefetch0(w0 + ahead);
        Sse.Prefetch0(w1 + ahead);
        Sse.Prefetch0(w2 + ahead);
        Sse.Prefetch0(w3 + ahead);
    }

    public static float Dot(float* w, float* x, int n) => TensorPrimitives.Dot(new ReadOnlySpan<float>(w, n), new ReadOnlySpan<float>(x, n));
}

/// <summary>
/// Dot products over rows of F32, F16 or BF16 elements, read in their stored form. Per (row, token): one 8-lane FMA
/// accumulator over the whole multiples of 8, summed, then the remaining columns added in order.
/// </summary>
internal readonly unsafe struct FloatDot<TRow> : IDotKernel
    where TRow : IRowFormat
{
    /// <summary>Elements per 64-byte cache line, less one: prefetch once per line, not once per 8 elements.</summary>
    private static int LineMask => (64 / TRow.ElementBytes) - 1;

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Rows4Tokens2<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x0, float* x1, int n, float* y0, float* y1)
        where TPrefetch : IPrefetch
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            if (TPrefetch.Enabled && (i & LineMask) == 0)
            {
                DotKernels.PrefetchNextGroup(w0, w1, w2, w3, (long)i * TRow.ElementBytes);
            }

            var v0 = Avx.LoadVector256(x0 + i);
            var v1 = Avx.LoadVector256(x1 + i);
            var r = TRow.Load8(w0, i);
            a00 = Fma.MultiplyAdd(r, v0, a00);
            a01 = Fma.MultiplyAdd(r, v1, a01);
            r = TRow.Load8(w1, i);
            a10 = Fma.MultiplyAdd(r, v0, a10);
            a11 = Fma.MultiplyAdd(r, v1, a11);
            r = TRow.Load8(w2, i);
            a20 = Fma.MultiplyAdd(r, v0, a20);
            a21 = Fma.MultiplyAdd(r, v1, a21);
            r = TRow.Load8(w3, i);
            a30 = Fma.MultiplyAdd(r, v0, a30);
            a31 = Fma.MultiplyAdd(r, v1, a31);
        }

        float s00 = Vector256.Sum(a00), s01 = Vector256.Sum(a01), s10 = Vector256.Sum(a10), s11 = Vector256.Sum(a11);
        float s20 = Vector256.Sum(a20), s21 = Vector256.Sum(a21), s30 = Vector256.Sum(a30), s31 = Vector256.Sum(a31);
        for (; i < n; i++)
        {
            float r0 = TRow.Load1(w0, i), r1 = TRow.Load1(w1, i), r2 = TRow.Load1(w2, i), r3 = TRow.Load1(w3, i);
            s00 += r0 * x0[i];
            s01 += r0 * x1[i];
            s10 += r1 * x0[i];
            s11 += r1 * x1[i];
            s20 += r2 * x0[i];
            s21 += r2 * x1[i];
            s30 += r3 * x0[i];
            s31 += r3 * x1[i];
        }

        y0[0] = s00;
        y0[1] = s10;
        y0[2] = s20;
        y0[3] = s30;
        y1[0] = s01;
        y1[1] = s11;
        y1[2] = s21;
        y1[3] = s31;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Rows4Tokens1<TPrefetch>(byte* w0, byte* w1, byte* w2, byte* w3, float* x, int n, float* y)
        where TPrefetch : IPrefetch
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            if (TPrefetch.Enabled && (i & LineMask) == 0)
            {
                DotKernels.PrefetchNextGroup(w0, w1, w2, w3, (long)i * TRow.ElementBytes);
            }

            var v = Avx.LoadVector256(x + i);
            a0 = Fma.MultiplyAdd(TRow.Load8(w0, i), v, a0);
            a1 = Fma.MultiplyAdd(TRow.Load8(w1, i), v, a1);
            a2 = Fma.MultiplyAdd(TRow.Load8(w2, i), v, a2);
            a3 = Fma.MultiplyAdd(TRow.Load8(w3, i), v, a3);
        }

        float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
        for (; i < n; i++)
        {
            s0 += TRow.Load1(w0, i) * x[i];
            s1 += TRow.Load1(w1, i) * x[i];
            s2 += TRow.Load1(w2, i) * x[i];
            s3 += TRow.Load1(w3, i) * x[i];
        }

        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static float Row1(byte* w, float* x, int n)
    {
        Vector256<float> a = default;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            a = Fma.MultiplyAdd(TRow.Load8(w, i), Avx.LoadVector256(x + i), a);
        }

        float s = Vector256.Sum(a);
        for (; i < n; i++)
        {
            s += TRow.Load1(w, i) * x[i];
        }

        return s;
    }

    /// <summary>Writes the row as float32 (exactly) for the multi-token path, which then runs <c>FloatDot&lt;F32Row&gt;</c>.</summary>
    public static void Widen(byte* row, float* destination, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            Avx.Store(destination + i, TRow.Load8(row, i));
        }

        for (; i < n; i++)
        {
            destination[i] = TRow.Load1(row, i);
        }
    }
}
