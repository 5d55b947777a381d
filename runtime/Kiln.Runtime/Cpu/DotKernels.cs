using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// Register-blocked dot products for the matrix kernel: 4 weight rows against 2 tokens at once, so every loaded
/// vector feeds several fused multiply-adds (one row against one token does one FMA per two loads and is bound by
/// load bandwidth). Falls back to TensorPrimitives.Dot where AVX2/FMA are missing.
/// </summary>
internal static unsafe class DotKernels
{
    public static bool Blocked => Fma.IsSupported && Vector256.IsHardwareAccelerated;

    /// <summary>y[t * yStride + r] = dot(rows[r], x[t]) for r in 0..3, t in 0..1.</summary>
    public static void Rows4Tokens2(float* w0, float* w1, float* w2, float* w3, float* x0, float* x1, int n, float* y0, float* y1)
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var v0 = Avx.LoadVector256(x0 + i);
            var v1 = Avx.LoadVector256(x1 + i);
            var r = Avx.LoadVector256(w0 + i);
            a00 = Fma.MultiplyAdd(r, v0, a00);
            a01 = Fma.MultiplyAdd(r, v1, a01);
            r = Avx.LoadVector256(w1 + i);
            a10 = Fma.MultiplyAdd(r, v0, a10);
            a11 = Fma.MultiplyAdd(r, v1, a11);
            r = Avx.LoadVector256(w2 + i);
            a20 = Fma.MultiplyAdd(r, v0, a20);
            a21 = Fma.MultiplyAdd(r, v1, a21);
            r = Avx.LoadVector256(w3 + i);
            a30 = Fma.MultiplyAdd(r, v0, a30);
            a31 = Fma.MultiplyAdd(r, v1, a31);
        }

        float s00 = Vector256.Sum(a00), s01 = Vector256.Sum(a01), s10 = Vector256.Sum(a10), s11 = Vector256.Sum(a11);
        float s20 = Vector256.Sum(a20), s21 = Vector256.Sum(a21), s30 = Vector256.Sum(a30), s31 = Vector256.Sum(a31);
        for (; i < n; i++)
        {
            s00 += w0[i] * x0[i];
            s01 += w0[i] * x1[i];
            s10 += w1[i] * x0[i];
            s11 += w1[i] * x1[i];
            s20 += w2[i] * x0[i];
            s21 += w2[i] * x1[i];
            s30 += w3[i] * x0[i];
            s31 += w3[i] * x1[i];
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

    /// <summary>y[r] = dot(rows[r], x) for r in 0..3: the decode case, one token.</summary>
    public static void Rows4Tokens1(float* w0, float* w1, float* w2, float* w3, float* x, int n, float* y)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var v = Avx.LoadVector256(x + i);
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + i), v, a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), v, a1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), v, a2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), v, a3);
        }

        float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
        for (; i < n; i++)
        {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }

        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    public static float Dot(float* w, float* x, int n) => TensorPrimitives.Dot(new ReadOnlySpan<float>(w, n), new ReadOnlySpan<float>(x, n));
}
