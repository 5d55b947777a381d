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

/// <summary>The ggml tensor types Kiln reads; other ggml types are rejected with a clear error.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    BF16 = 30,
}

/// <summary>One tensor's entry in the GGUF header. Dimensions are ggml order: Dimensions[0] is the innermost.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, uint RawType, long Offset)
{
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);
}
