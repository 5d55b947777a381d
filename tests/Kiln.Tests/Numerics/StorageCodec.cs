using System.Buffers.Binary;

namespace Kiln.Tests.Numerics;

/// <summary>How a test checkpoint stores a tensor.</summary>
public enum StoredType
{
    F32,
    F16,
    BF16,
    Q8_0,
}

/// <summary>
/// Test-side encoders and decoders for the stored types, written independently of Kiln's own (WeightMatrix,
/// GgufWriter), so that the reference model computes from the values the file really holds and a decoding bug in
/// Kiln shows up as a mismatch instead of being shared by both sides.
/// </summary>
public static class StorageCodec
{
    public const int Q8Block = 32;
    private const int Q8BlockBytes = 2 + Q8Block;

    public static string SafetensorsDType(StoredType type) => type switch
    {
        StoredType.F32 => "F32",
        StoredType.F16 => "F16",
        StoredType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "safetensors has no such dtype"),
    };

    public static byte[] Encode(ReadOnlySpan<float> values, StoredType type)
    {
        switch (type)
        {
            case StoredType.F32:
                var f32 = new byte[values.Length * 4];
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(f32.AsSpan(i * 4), values[i]);
                }

                return f32;
            case StoredType.F16:
                var f16 = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(i * 2), (Half)values[i]);
                }

                return f16;
            case StoredType.BF16:
                var bf16 = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), BFloat16RoundToNearestEven(values[i]));
                }

                return bf16;
            case StoredType.Q8_0:
                return QuantizeQ8(values);
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    public static float[] Decode(ReadOnlySpan<byte> bytes, StoredType type)
    {
        switch (type)
        {
            case StoredType.F32:
                var f32 = new float[bytes.Length / 4];
                for (int i = 0; i < f32.Length; i++)
                {
                    f32[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
                }

                return f32;
            case StoredType.F16:
                var f16 = new float[bytes.Length / 2];
                for (int i = 0; i < f16.Length; i++)
                {
                    f16[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]);
                }

                return f16;
            case StoredType.BF16:
                var bf16 = new float[bytes.Length / 2];
                for (int i = 0; i < bf16.Length; i++)
                {
                    bf16[i] = BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16);
                }

                return bf16;
            case StoredType.Q8_0:
                int blocks = bytes.Length / Q8BlockBytes;
                var q8 = new float[blocks * Q8Block];
                for (int b = 0; b < blocks; b++)
                {
                    var block = bytes.Slice(b * Q8BlockBytes, Q8BlockBytes);
                    float scale = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
                    for (int i = 0; i < Q8Block; i++)
                    {
                        // int8 times an f16 scale needs at most 18 significant bits: exact in float32.
                        q8[(b * Q8Block) + i] = (sbyte)block[2 + i] * scale;
                    }
                }

                return q8;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>The values a file of this type really holds: encode, then decode.</summary>
    public static float[] RoundTrip(ReadOnlySpan<float> values, StoredType type) => Decode(Encode(values, type), type);

    /// <summary>PyTorch's float32 to bfloat16 conversion (round to nearest, ties to even).</summary>
    public static ushort BFloat16RoundToNearestEven(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary>ggml's quantize_row_q8_0_ref: d = max|x| / 127 stored as f16, q = roundf(x / d) (ties away from zero).</summary>
    public static byte[] QuantizeQ8(ReadOnlySpan<float> values)
    {
        if (values.Length % Q8Block != 0)
        {
            throw new ArgumentException($"Q8_0 needs a multiple of {Q8Block} values", nameof(values));
        }

        var result = new byte[values.Length / Q8Block * Q8BlockBytes];
        for (int b = 0; b < values.Length / Q8Block; b++)
        {
            var block = values.Slice(b * Q8Block, Q8Block);
            float amax = 0;
            foreach (float v in block)
            {
                amax = MathF.Max(amax, MathF.Abs(v));
            }

            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var destination = result.AsSpan(b * Q8BlockBytes, Q8BlockBytes);
            BinaryPrimitives.WriteHalfLittleEndian(destination, (Half)d);
            for (int i = 0; i < Q8Block; i++)
            {
                destination[2 + i] = (byte)(sbyte)MathF.Round(block[i] * id, MidpointRounding.AwayFromZero);
            }
        }

        return result;
    }
}
