using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Tensors;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Kernels;

/// <summary>
/// Kiln's vectorised block decoders against the tests' plain reading of ggml's layouts (<see cref="GgmlBlocks"/>), bit
/// for bit, on random blocks (every bit of every value and scale field exercised) of each block type.
/// </summary>
public class BlockDecodingTests
{
    public static TheoryData<WeightType> BlockTypes() =>
        [WeightType.Q8_0, WeightType.Q4_0, WeightType.Q4_1, WeightType.Q5_0, WeightType.Q5_1, WeightType.Q2_K, WeightType.Q3_K, WeightType.Q4_K, WeightType.Q5_K, WeightType.Q6_K];

    [Theory]
    [MemberData(nameof(BlockTypes))]
    public unsafe void ReadRow_EqualsThePlainDecodingOfGgmlLayouts(WeightType type)
    {
        const int Rows = 6;
        int columns = 4 * WeightTypeInfo.BlockValues(type);
        using var weights = new TestWeights(type, Rows, columns, seed: 3);
        var w = weights.Matrix;
        var ggml = Enum.Parse<GgmlType>(type.ToString());
        var row = new float[columns];
        int distinct = 0;
        for (int r = 0; r < Rows; r++)
        {
            w.ReadRow(r, row);
            float[] expected = GgmlBlocks.Decode(ggml, new ReadOnlySpan<byte>(w.Data + (w.RowBytes * r), (int)w.RowBytes), columns);
            for (int c = 0; c < columns; c++)
            {
                Assert.True(
                    BitConverter.SingleToUInt32Bits(expected[c]) == BitConverter.SingleToUInt32Bits(row[c]),
                    $"{type} row {r} value {c}: Kiln {row[c]:R}, ggml's layout {expected[c]:R}");
            }

            distinct += expected.Distinct().Count();
        }

        // Random blocks give many different values: the comparison is not of zeros.
        Assert.True(distinct > Rows * 8, $"{type}: only {distinct} distinct values");
    }
}
