using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kiln.Runtime.Cpu;

namespace Kiln.Runtime.Tensors.Quants;

/// <summary>The few vector steps every block decoder uses: eight bytes widened, a half read, eight floats written.</summary>
internal static unsafe class BlockBits
{
    /// <summary>Bytes p[0..7] zero-extended to eight int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Bytes8(byte* p) =>
        Avx2.IsSupported
            ? Avx2.ConvertToVector256Int32(p)
            : Vector256.Create(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);

    /// <summary>Whether the decoders take 16 values at a time (AVX-512: a 16-entry table lookup turns a nibble into its float).</summary>
    public static bool Wide => Avx512F.IsSupported;

    /// <summary>Bytes p[0..15] zero-extended to sixteen int32 lanes. Requires AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Bytes16(byte* p) => Avx512F.ConvertToVector512Int32(Vector128.Load(p));

    /// <summary>
    /// table[lane's low 4 bits] in each lane (vpermps): a nibble to a float in one step, the higher bits of the lane
    /// ignored, so a zero-extended byte gives its low nibble's entry. Requires AVX-512.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Lookup(Vector512<float> table, Vector512<int> nibbles) => Avx512F.PermuteVar16x32(table, nibbles);

    /// <summary>q * scale + offset at destination[0..15], as <see cref="ScaledPlus"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaledPlus16(Vector512<float> q, float scale, float offset, float* destination) =>
        ((q * Vector512.Create(scale)) + Vector512.Create(offset)).Store(destination);

    /// <summary>q * scale at destination[0..15], as <see cref="Scaled"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scaled16(Vector512<float> q, float scale, float* destination) => (q * Vector512.Create(scale)).Store(destination);

    /// <summary>The f16 at <paramref name="p"/> as float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(byte* p) => HalfConversion.ToSingle(Unsafe.ReadUnaligned<ushort>(p));

    /// <summary>q * scale at destination[0..7]: a type-0 value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scaled(Vector256<int> q, float scale, float* destination) =>
        (Vector256.ConvertToSingle(q) * Vector256.Create(scale)).Store(destination);

    /// <summary>q * scale + offset at destination[0..7], rounded after the product and after the sum as ggml does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaledPlus(Vector256<int> q, float scale, float offset, float* destination) =>
        ((Vector256.ConvertToSingle(q) * Vector256.Create(scale)) + Vector256.Create(offset)).Store(destination);

    /// <summary>
    /// 16 in lane i when bit (first + i) of <paramref name="bits"/> is set, else 0: the fifth bit of Q5 values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> HighBits(uint bits, int first, int value)
    {
        var lanes = Vector256.Create(bits >> first) & Vector256.Create(1u, 2, 4, 8, 16, 32, 64, 128);
        return ~Vector256.Equals(lanes, Vector256<uint>.Zero).AsInt32() & Vector256.Create(value);
    }
}
