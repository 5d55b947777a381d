namespace Kiln.Runtime.Tensors.Quants;

/// <summary>Decodes rows of any ggml block type to float32, dispatching once per row to the type's decoder.</summary>
internal static unsafe class BlockDequantizer
{
    /// <summary>Writes the <paramref name="columns"/> values of a stored row of <paramref name="type"/> to <paramref name="destination"/>.</summary>
    public static void Row(WeightType type, byte* row, float* destination, int columns)
    {
        switch (type)
        {
            case WeightType.Q8_0: Row<LegacyBlocks.Q8_0>(row, destination, columns); break;
            case WeightType.Q4_0: Row<LegacyBlocks.Q4_0>(row, destination, columns); break;
            case WeightType.Q4_1: Row<LegacyBlocks.Q4_1>(row, destination, columns); break;
            case WeightType.Q5_0: Row<LegacyBlocks.Q5_0>(row, destination, columns); break;
            case WeightType.Q5_1: Row<LegacyBlocks.Q5_1>(row, destination, columns); break;
            case WeightType.Q2_K: Row<KBlocks.Q2_K>(row, destination, columns); break;
            case WeightType.Q3_K: Row<KBlocks.Q3_K>(row, destination, columns); break;
            case WeightType.Q4_K: Row<KBlocks.Q4_K>(row, destination, columns); break;
            case WeightType.Q5_K: Row<KBlocks.Q5_K>(row, destination, columns); break;
            case WeightType.Q6_K: Row<KBlocks.Q6_K>(row, destination, columns); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "not a block type");
        }
    }

    private static void Row<TFormat>(byte* row, float* destination, int columns)
        where TFormat : IBlockFormat
    {
        for (int c = 0; c < columns; c += TFormat.BlockValues, row += TFormat.BlockBytes)
        {
            TFormat.Dequantize(row, destination + c);
        }
    }
}
