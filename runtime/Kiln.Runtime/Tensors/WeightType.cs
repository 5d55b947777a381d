namespace Kiln.Runtime.Tensors;

/// <summary>How a weight matrix is stored. Arithmetic is always float32; this is only the storage.</summary>
public enum WeightType
{
    F32,
    F16,
    BF16,

    /// <summary>ggml's Q8_0: blocks of 32 int8 values sharing one f16 scale (34 bytes a block).</summary>
    Q8_0,
}

public static class WeightTypeInfo
{
    public const int Q8BlockSize = 32;
    public const int Q8BlockBytes = 34;

    /// <summary>Bytes of one row of <paramref name="columns"/> values.</summary>
    public static long RowBytes(WeightType type, long columns) => type switch
    {
        WeightType.F32 => columns * 4,
        WeightType.F16 or WeightType.BF16 => columns * 2,
        WeightType.Q8_0 => columns / Q8BlockSize * Q8BlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };
}
