using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// How the dot kernels read a stored row of float-like elements (F32, F16, BF16): eight values at a time straight into a
/// register, so a decode step reads each weight once in its stored width instead of widening rows into scratch first.
/// Every load is exact (the same float32 values WeightMatrix.ReadRow produces), so a kernel over the stored row and the
/// same kernel over a widened copy give bit-identical results.
/// </summary>
internal unsafe interface IRowFormat
{
    /// <summary>Elements i..i+7 of the row as float32. Requires AVX2.</summary>
    static abstract Vector256<float> Load8(byte* row, int i);

    /// <summary>Element i of the row as float32.</summary>
    static abstract float Load1(byte* row, int i);

    static abstract int ElementBytes { get; }
}

internal readonly unsafe struct F32Row : IRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) => Avx.LoadVector256((float*)row + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, int i) => ((float*)row)[i];

    public static int ElementBytes => sizeof(float);
}

/// <summary>bfloat16 is the high half of a float32: zero-extend and shift 16 bits.</summary>
internal readonly unsafe struct BF16Row : IRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) =>
        Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((ushort*)row + i), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, int i) => BitConverter.Int32BitsToSingle(((ushort*)row)[i] << 16);

    public static int ElementBytes => sizeof(ushort);
}

internal readonly unsafe struct F16Row : IRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) => HalfConversion.Widen8((short*)row + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, int i) => HalfConversion.ToSingle(((ushort*)row)[i]);

    public static int ElementBytes => sizeof(ushort);
}

/// <summary>
/// Exact IEEE half to float32 conversion. .NET exposes no F16C (vcvtph2ps), and the usual "shift the bits and multiply
/// by 2^112" trick feeds subnormal floats to the multiplier, which costs a ~100-cycle microcode assist per vector on
/// Intel; half weights near zero are common enough for that to matter. Instead the exponent is rebased by 224 so that
/// every input is a normal float (or inf/NaN for half inf/NaN) and the value is recovered as
/// min(f * 2^-111 - 2^-14, f * 2^-112): the first term is exact for subnormal halves (which have no implicit leading
/// one), the second for normal ones, and the correct one is always the smaller. Checked against (float)Half for all
/// 65536 inputs in the tests.
/// </summary>
internal static unsafe class HalfConversion
{
    private static readonly float[] Table = CreateTable();

    /// <summary>Eight halves (as raw bits) to float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen8(short* source)
    {
        // Sign-extended then shifted: bit 31 holds the sign, bits 13..27 exponent and mantissa.
        Vector256<int> bits = Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(source), 13);
        Vector256<float> rebased = ((bits & Vector256.Create(0x0FFF_E000)) | Vector256.Create(224 << 23)).AsSingle();
        Vector256<float> subnormal = Fma.MultiplyAdd(rebased, Vector256.Create(Pow2(-111)), Vector256.Create(-Pow2(-14)));
        Vector256<float> magnitude = Avx.Min(subnormal, rebased * Vector256.Create(Pow2(-112)));
        return (magnitude.AsInt32() | (bits & Vector256.Create(int.MinValue))).AsSingle();
    }

    /// <summary>One half (raw bits) to float32, by table: used once per Q8_0 block, where a call would spill registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(Table), bits);

    private static float Pow2(int exponent) => BitConverter.Int32BitsToSingle((exponent + 127) << 23);

    private static float[] CreateTable()
    {
        var table = new float[ushort.MaxValue + 1];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        }

        return table;
    }
}
