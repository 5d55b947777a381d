namespace Kiln.Runtime.Formats.Gguf;

/// <summary>Metadata value types of the GGUF format (gguf.md in the ggml repository).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// ggml tensor type ids (ggml.h's enum ggml_type). Kiln reads the float types, Q4_0..Q8_0 and Q2_K..Q6_K; the others
/// (the IQ types, Q8_1, Q8_K, TQ, MXFP4, integer and f64 tensors) are named here only to be refused by name.
/// </summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>How the ggml types Kiln reads are stored in memory.</summary>
public static class GgmlTypes
{
    /// <summary>The storage of <paramref name="type"/>, or null for a type Kiln does not read.</summary>
    public static Tensors.WeightType? ToWeightType(GgmlType type) => type switch
    {
        GgmlType.F32 => Tensors.WeightType.F32,
        GgmlType.F16 => Tensors.WeightType.F16,
        GgmlType.BF16 => Tensors.WeightType.BF16,
        GgmlType.Q8_0 => Tensors.WeightType.Q8_0,
        GgmlType.Q4_0 => Tensors.WeightType.Q4_0,
        GgmlType.Q4_1 => Tensors.WeightType.Q4_1,
        GgmlType.Q5_0 => Tensors.WeightType.Q5_0,
        GgmlType.Q5_1 => Tensors.WeightType.Q5_1,
        GgmlType.Q2_K => Tensors.WeightType.Q2_K,
        GgmlType.Q3_K => Tensors.WeightType.Q3_K,
        GgmlType.Q4_K => Tensors.WeightType.Q4_K,
        GgmlType.Q5_K => Tensors.WeightType.Q5_K,
        GgmlType.Q6_K => Tensors.WeightType.Q6_K,
        _ => null,
    };
}

/// <summary>One tensor's entry in the GGUF header. Dimensions are ggml order: Dimensions[0] is the innermost.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, uint RawType, long Offset)
{
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);
}
