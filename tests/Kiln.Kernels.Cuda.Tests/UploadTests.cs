using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// What the upload hands the device, checked on the host (no GPU needed): each row rounded to bf16, or a Q8_0
/// matrix split into int8 values and float32 scales that give back exactly what the CPU backend reads.
/// </summary>
public sealed class UploadTests
{
    [Theory]
    [InlineData(GgmlType.BF16)] // taken as stored
    [InlineData(GgmlType.F32)] // rounded to nearest even
    [InlineData(GgmlType.Q8_0)] // dequantized, then rounded
    public void RowsAsBf16_AreEveryRowRoundedToBf16(GgmlType type)
    {
        string directory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-models");
        using var model = ModelLoader.Load(RandomLlamaGguf.WriteCached(directory, new RandomLlamaOptions { WeightType = type, Seed = 91 }));
        var matrix = model.Weights.Layers[0].Gate;
        int columns = matrix.Columns;
        var widened = new float[columns];
        var chunk = new ushort[5 * columns];

        var rows = DeviceMatrix.RowsAsBf16(matrix, 3, 5, widened, chunk).ToArray();

        var row = new float[columns];
        for (int r = 0; r < 5; r++)
        {
            matrix.ReadRow(3 + r, row);
            for (int k = 0; k < columns; k++)
            {
                Assert.Equal(GgufWriter.ToBFloat16(row[k]), rows[(r * columns) + k]);
            }
        }
    }

    [Fact]
    public void Q8Rows_RepackIntoValuesAndScales_ThatGiveTheStoredWeightsExactly()
    {
        string directory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-models");
        using var model = ModelLoader.Load(RandomLlamaGguf.WriteCached(directory, new RandomLlamaOptions { WeightType = GgmlType.Q8_0, Seed = 92 }));
        var matrix = model.Weights.Layers[0].Down;
        int columns = matrix.Columns;
        var values = new sbyte[4 * columns];
        var scales = new float[4 * columns / 32];

        DeviceMatrix.RepackQ8(matrix, 2, 4, values, scales);

        var row = new float[columns];
        for (int r = 0; r < 4; r++)
        {
            matrix.ReadRow(2 + r, row);
            for (int k = 0; k < columns; k++)
            {
                Assert.Equal(row[k], values[(r * columns) + k] * scales[((r * columns) + k) / 32]);
            }
        }

        Assert.Contains(values, v => v != 0);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, WeightFormat.Q8)]
    [InlineData(GgmlType.F16, WeightFormat.F16)]
    [InlineData(GgmlType.BF16, WeightFormat.Bf16)]
    [InlineData(GgmlType.F32, WeightFormat.Bf16)]
    public void MatricesKeepTheFilesCompactFormat_OrBecomeBf16(GgmlType type, WeightFormat expected)
    {
        string directory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-models");
        using var model = ModelLoader.Load(RandomLlamaGguf.WriteCached(directory, new RandomLlamaOptions { WeightType = type, Seed = 93 }));
        var layer = model.Weights.Layers[0];
        Assert.Equal(expected, DeviceMatrix.FormatOf([layer.Query, layer.Key, layer.Value]));
    }

    [Fact]
    public void StackedPartsOfDifferentFormats_BecomeBf16()
    {
        string directory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-models");
        using var q8 = ModelLoader.Load(RandomLlamaGguf.WriteCached(directory, new RandomLlamaOptions { WeightType = GgmlType.Q8_0, Seed = 93 }));
        using var f16 = ModelLoader.Load(RandomLlamaGguf.WriteCached(directory, new RandomLlamaOptions { WeightType = GgmlType.F16, Seed = 93 }));
        Assert.Equal(WeightFormat.Bf16, DeviceMatrix.FormatOf([q8.Weights.Layers[0].Query, f16.Weights.Layers[0].Key]));
    }
}
