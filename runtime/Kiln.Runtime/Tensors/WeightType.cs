namespace Kiln.Runtime.Tensors;

/// <summary>
/// How a weight matrix is stored. Arithmetic is always float32; this is only the storage. The block types are ggml's
/// (ggml-common.h): a row is a sequence of blocks, each holding <see cref="WeightTypeInfo.BlockValues"/> values in
/// <see cref="WeightTypeInfo.BlockBytes"/> bytes. Their layouts are described where they are decoded, in
/// <see cref="Quants.LegacyBlocks"/> and <see cref="Quants.KBlocks"/>.
/// </summary>
public enum WeightType
{
    F32,
    F16,
    BF16,

    /// <summary>ggml's Q8_0: blocks of 32 int8 values sharing one f16 scale (34 bytes a block).</summary>
    Q8_0,

    /// <summary>32 values: f16 scale, 4-bit values offset by 8 (18 bytes).</summary>
    Q4_0,

    /// <summary>32 values: f16 scale and minimum, 4-bit values (20 bytes).</summary>
    Q4_1,

    /// <summary>32 values: f16 scale, 5-bit values offset by 16 (22 bytes).</summary>
    Q5_0,

    /// <summary>32 values: f16 scale and minimum, 5-bit values (24 bytes).</summary>
    Q5_1,

    /// <summary>256 values in 16 groups of 16: 2-bit values, 4-bit group scales and minimums (84 bytes).</summary>
    Q2_K,

    /// <summary>256 values in 16 groups of 16: 3-bit values, 6-bit signed group scales (110 bytes).</summary>
    Q3_K,

    /// <summary>256 values in 8 groups of 32: 4-bit values, 6-bit group scales and minimums (144 bytes).</summary>
    Q4_K,

    /// <summary>256 values in 8 groups of 32: 5-bit values, 6-bit group scales and minimums (176 bytes).</summary>
    Q5_K,

    /// <summary>256 values in 16 groups of 16: 6-bit values offset by 32, int8 group scales (210 bytes).</summary>
    Q6_K,
}

public static class WeightTypeInfo
{
    public const int Q8BlockSize = 32;
    public const int Q8BlockBytes = 34;

    /// <summary>Values in one block: 1 for the float types, 32 for Q4_0..Q8_0, 256 for the K-quants.</summary>
    public static int BlockValues(WeightType type) => type switch
    {
        WeightType.F32 or WeightType.F16 or WeightType.BF16 => 1,
        WeightType.Q8_0 or WeightType.Q4_0 or WeightType.Q4_1 or WeightType.Q5_0 or WeightType.Q5_1 => 32,
        WeightType.Q2_K or WeightType.Q3_K or WeightType.Q4_K or WeightType.Q5_K or WeightType.Q6_K => 256,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Bytes of one block.</summary>
    public static int BlockBytes(WeightType type) => type switch
    {
        WeightType.F32 => 4,
        WeightType.F16 or WeightType.BF16 => 2,
        WeightType.Q8_0 => Q8BlockBytes,
        WeightType.Q4_0 => 18,
        WeightType.Q4_1 => 20,
        WeightType.Q5_0 => 22,
        WeightType.Q5_1 => 24,
        WeightType.Q2_K => 84,
        WeightType.Q3_K => 110,
        WeightType.Q4_K => 144,
        WeightType.Q5_K => 176,
        WeightType.Q6_K => 210,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Whether the type stores blocks of several values (so rows and shards cover whole blocks).</summary>
    public static bool IsBlocked(WeightType type) => BlockValues(type) > 1;

    /// <summary>Bytes of one row of <paramref name="columns"/> values (a multiple of the block size).</summary>
    public static long RowBytes(WeightType type, long columns) => columns / BlockValues(type) * BlockBytes(type);
}
