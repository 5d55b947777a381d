using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>What the upload hands the device, checked on the host (no GPU needed): each row rounded to bf16.</summary>
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

        var rows = CudaWeights.RowsAsBf16(matrix, 3, 5, widened, chunk).ToArray();

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
}
