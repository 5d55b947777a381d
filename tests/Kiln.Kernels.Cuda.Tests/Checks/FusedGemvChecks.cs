using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The fused decode-layer products of gemv.cu against float64, over bf16, f16 and Q8 weights: RMSNorm, RoPE and the
/// cache writes around the QKV product (gemv_norm_rope), the residual add inside a product (gemv_add), and RMSNorm
/// plus SwiGLU around the gate/up product (gemv_norm_swiglu); and the plain f16 and Q8 products with one, two and four rows a warp.
/// </summary>
public abstract class FusedGemvChecks
{
    private const int Rows = 301, Columns = 2080; // a partial block and warp; columns a multiple of 32, not of 256
    private const float Eps = 1e-5f;

    [Theory]
    [InlineData(1, true, false, WeightFormat.Bf16)]
    [InlineData(4, false, true, WeightFormat.Bf16)]
    [InlineData(8, true, false, WeightFormat.Q8)]
    [InlineData(3, false, true, WeightFormat.F16)]
    public void NormedRopeProduct_RotatesTheNormedQkvAndWritesTheCache(int tokens, bool halfSplit, bool withBias, WeightFormat format)
    {
        TestDevice.Require();
        const int QHeads = 4, KvHeads = 2, D = TestDevice.HeadDim, Slots = 48;
        const int QkvRows = (QHeads + (2 * KvHeads)) * D, KvDim = KvHeads * D;
        var weights = TestDevice.Random(QkvRows * Columns, 21);
        var x = TestDevice.Random(tokens * Columns, 22, 3f);
        var norm = TestDevice.Random(Columns, 23);
        var bias = TestDevice.Random(QkvRows, 24);
        var inverseFrequencies = Enumerable.Range(0, D / 2).Select(i => Math.Pow(500000, -2.0 * i / D)).ToArray();
        int[] positions = [0, 5, 17, 4000, 100000, 2, 77, 1];
        int[] slots = [3, -1, 0, 17, 40, 9, 22, 47]; // token 1 writes no cache slot
        using var w = CompactWeights.Upload(format, weights, Columns);
        using var xBuffer = TestDevice.Floats(x);
        using var normBuffer = TestDevice.Floats(norm);
        using var biasBuffer = TestDevice.Floats(bias);
        using var positionBuffer = TestDevice.Ints(positions);
        using var slotBuffer = TestDevice.Ints(slots);
        using var inverseBuffer = new DeviceBuffer(inverseFrequencies.Length * sizeof(double));
        inverseBuffer.Upload<double>(inverseFrequencies, TestDevice.Stream);
        using var qkv = TestDevice.Poisoned((long)tokens * QkvRows * 4);
        using var keys = TestDevice.Poisoned((long)Slots * KvDim * 2);
        using var values = TestDevice.Poisoned((long)Slots * KvDim * 2);
        TestDevice.Kernels.Launch(GemvVariant.ForFormat("gemv_norm_rope", format), ((uint)((QkvRows / 2) + 7) / 8, 1), 256, TestDevice.Stream,
            [qkv.Pointer, w.Data.Pointer, xBuffer.Pointer, withBias ? biasBuffer.Pointer : 0, normBuffer.Pointer, KernelModule.Float(Eps),
             KernelModule.Int(QkvRows), KernelModule.Int(Columns), KernelModule.Int(tokens), w.ScalesPointer,
             keys.Pointer, values.Pointer, positionBuffer.Pointer, slotBuffer.Pointer, inverseBuffer.Pointer,
             KernelModule.Int(QHeads), KernelModule.Int(KvHeads), KernelModule.Int(halfSplit ? 1 : 0)]);

        var expected = new double[tokens * QkvRows];
        for (int t = 0; t < tokens; t++)
        {
            var normed = Normalize(x.AsSpan(t * Columns, Columns), norm);
            var row = expected.AsSpan(t * QkvRows, QkvRows);
            for (int r = 0; r < QkvRows; r++)
            {
                row[r] = Dot(weights.AsSpan(r * Columns, Columns), normed) + (withBias ? bias[r] : 0);
            }

            for (int h = 0; h < QHeads + KvHeads; h++) // queries and keys rotate; values do not
            {
                for (int i = 0; i < D / 2; i++)
                {
                    int a = (h * D) + (halfSplit ? i : 2 * i);
                    int b = (h * D) + (halfSplit ? i + (D / 2) : (2 * i) + 1);
                    double angle = positions[t] * inverseFrequencies[i];
                    (row[a], row[b]) = ((row[a] * Math.Cos(angle)) - (row[b] * Math.Sin(angle)), (row[a] * Math.Sin(angle)) + (row[b] * Math.Cos(angle)));
                }
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(qkv, expected.Length), expected), 0, 1e-5);
        var keyCache = TestDevice.ReadBf16(keys, Slots * KvDim);
        var valueCache = TestDevice.ReadBf16(values, Slots * KvDim);
        for (int t = 0; t < tokens; t++)
        {
            if (slots[t] < 0)
            {
                continue;
            }

            int k = (t * QkvRows) + (QHeads * D);
            Assert.InRange(TestDevice.RelativeError(keyCache.AsSpan(slots[t] * KvDim, KvDim), expected.AsSpan(k, KvDim)), 0, 1e-2);
            Assert.InRange(TestDevice.RelativeError(valueCache.AsSpan(slots[t] * KvDim, KvDim), expected.AsSpan(k + KvDim, KvDim)), 0, 1e-2);
        }

        // Slot 1 belongs to no token: the kernel must not have written it.
        Assert.All(keyCache.AsSpan(KvDim, KvDim).ToArray().Concat(valueCache.AsSpan(KvDim, KvDim).ToArray()), v => Assert.True(float.IsNaN(v)));
    }

    [Theory]
    [InlineData(1, false, WeightFormat.Bf16)]
    [InlineData(3, true, WeightFormat.Bf16)]
    [InlineData(8, false, WeightFormat.Bf16)]
    [InlineData(2, true, WeightFormat.Q8)]
    [InlineData(5, false, WeightFormat.F16)]
    public void AddingProduct_AddsIntoTheResidualStream(int tokens, bool withBias, WeightFormat format)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(Rows * Columns, 25);
        var x = TestDevice.Random(tokens * Columns, 26);
        var residual = TestDevice.Random(tokens * Rows, 27, 4f);
        var bias = TestDevice.Random(Rows, 28);
        using var w = CompactWeights.Upload(format, weights, Columns);
        using var xBuffer = TestDevice.Bf16(x);
        using var biasBuffer = TestDevice.Floats(bias);
        using var y = TestDevice.Floats(residual);
        Launch("gemv_add", Rows, y, w, xBuffer, withBias ? biasBuffer : null, null, tokens);

        var expected = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
        {
            var input = x.AsSpan(t * Columns, Columns).ToArray().Select(v => (double)v).ToArray();
            for (int r = 0; r < Rows; r++)
            {
                expected[(t * Rows) + r] = residual[(t * Rows) + r] + Dot(weights.AsSpan(r * Columns, Columns), input) + (withBias ? bias[r] : 0);
            }
        }

        // Each output must have moved from the residual by exactly its product: an output left alone fails.
        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(y, expected.Length), expected), 0, 1e-5);
    }

    [Theory]
    [InlineData(1, WeightFormat.Bf16)]
    [InlineData(6, WeightFormat.Bf16)]
    [InlineData(2, WeightFormat.Q8)]
    [InlineData(1, WeightFormat.F16)]
    public void NormedSwiGluProduct_IsSiluOfGateTimesUp(int tokens, WeightFormat format)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(2 * Rows * Columns, 29); // gate rows, then up rows: the fused gate/up weight
        var x = TestDevice.Random(tokens * Columns, 30, 3f);
        var norm = TestDevice.Random(Columns, 31);
        using var w = CompactWeights.Upload(format, weights, Columns);
        using var xBuffer = TestDevice.Floats(x);
        using var normBuffer = TestDevice.Floats(norm);
        using var output = TestDevice.Poisoned((long)tokens * Rows * 2);
        Launch("gemv_norm_swiglu", Rows, output, w, xBuffer, null, normBuffer, tokens);

        var expected = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
        {
            var normed = Normalize(x.AsSpan(t * Columns, Columns), norm);
            for (int i = 0; i < Rows; i++)
            {
                double gate = Dot(weights.AsSpan(i * Columns, Columns), normed);
                double up = Dot(weights.AsSpan((Rows + i) * Columns, Columns), normed);
                expected[(t * Rows) + i] = gate / (1 + Math.Exp(-gate)) * up;
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadBf16(output, expected.Length), expected), 0, 1e-2);
    }

    [Theory]
    [InlineData(1, WeightFormat.Q8, 1)]
    [InlineData(5, WeightFormat.Q8, 2)]
    [InlineData(8, WeightFormat.Q8, 4)]
    [InlineData(2, WeightFormat.F16, 1)]
    [InlineData(7, WeightFormat.F16, 2)]
    [InlineData(3, WeightFormat.F16, 4)]
    public void CompactProduct_MatchesFloat64(int tokens, WeightFormat format, int rowsPerWarp)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(Rows * Columns, 32);
        var x = TestDevice.Random(tokens * Columns, 33);
        var bias = TestDevice.Random(Rows, 34);
        using var w = CompactWeights.Upload(format, weights, Columns);
        using var xBuffer = TestDevice.Bf16(x);
        using var biasBuffer = TestDevice.Floats(bias);
        using var y = TestDevice.Poisoned((long)tokens * Rows * 4);
        var variant = GemvVariant.For(rowsPerWarp switch { 4 => 65536, 2 => 8192, _ => 1 }, Columns);
        Assert.Equal(rowsPerWarp, variant.RowsPerWarp);
        TestDevice.Kernels.Launch(variant.CompactKernel(format), (variant.Blocks(Rows), 1), (uint)variant.Threads, TestDevice.Stream,
            [y.Pointer, w.Data.Pointer, xBuffer.Pointer, biasBuffer.Pointer, 0, 0, KernelModule.Int(Rows), KernelModule.Int(Columns), KernelModule.Int(tokens), w.ScalesPointer]);

        var expected = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
        {
            var input = x.AsSpan(t * Columns, Columns).ToArray().Select(v => (double)v).ToArray();
            for (int r = 0; r < Rows; r++)
            {
                expected[(t * Rows) + r] = Dot(weights.AsSpan(r * Columns, Columns), input) + bias[r];
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(y, expected.Length), expected), 0, 1e-5);
    }

    [Theory]
    [InlineData(WeightFormat.Q8)]
    [InlineData(WeightFormat.F16)]
    public void Expansion_AndEmbedding_ReadCompactRowsExactly(WeightFormat format)
    {
        TestDevice.Require();
        const int TableRows = 40;
        var table = TestDevice.Random(TableRows * Columns, 35, 2f);
        using var w = CompactWeights.Upload(format, table, Columns);

        // Rows 7..18 expanded to bf16, as the cuBLAS path does a slice at a time.
        long first = 7L * Columns, count = 12L * Columns;
        using var expanded = TestDevice.Poisoned(count * 2);
        TestDevice.Kernels.Launch("expand_to_bf16", (64, 1), 256, TestDevice.Stream,
            [expanded.Pointer, w.Data.Pointer, w.ScalesPointer, (ulong)first, (ulong)count, format == WeightFormat.Q8 ? 1UL : 0UL]);
        var expectedRows = table.AsSpan((int)first, (int)count).ToArray().Select(v => (double)Bf16(v)).ToArray();
        Assert.Equal(0, TestDevice.RelativeError(TestDevice.ReadBf16(expanded, (int)count), expectedRows));

        int[] ids = [3, 39, 0, 3];
        using var idBuffer = TestDevice.Ints(ids);
        using var x = TestDevice.Poisoned((long)ids.Length * Columns * 4);
        TestDevice.Kernels.Launch("embed_tokens_compact", ((uint)ids.Length, 1), 256, TestDevice.Stream,
            [x.Pointer, w.Data.Pointer, w.ScalesPointer, idBuffer.Pointer, KernelModule.Int(Columns), format == WeightFormat.Q8 ? 1UL : 0UL]);
        var expectedEmbedding = ids.SelectMany(id => table.AsSpan(id * Columns, Columns).ToArray()).ToArray();
        Assert.Equal(0, TestDevice.RelativeError(TestDevice.ReadFloats(x, expectedEmbedding.Length), expectedEmbedding));
    }

    private static float Bf16(float value) => BitConverter.UInt32BitsToSingle((uint)Runtime.Formats.Gguf.GgufWriter.ToBFloat16(value) << 16);

    private static void Launch(string kernel, int outputs, DeviceBuffer y, CompactWeights w, DeviceBuffer x, DeviceBuffer? bias, DeviceBuffer? norm, int tokens)
    {
        bool compact = w.Format != WeightFormat.Bf16;
        TestDevice.Kernels.Launch(compact ? $"{kernel}_{GemvVariant.Suffix(w.Format)}" : kernel, ((uint)((outputs + 7) / 8), 1), 256, TestDevice.Stream,
            compact
                ? [y.Pointer, w.Data.Pointer, x.Pointer, bias?.Pointer ?? 0, norm?.Pointer ?? 0, KernelModule.Float(Eps), KernelModule.Int(outputs), KernelModule.Int(Columns), KernelModule.Int(tokens), w.ScalesPointer]
                : [y.Pointer, w.Data.Pointer, x.Pointer, bias?.Pointer ?? 0, norm?.Pointer ?? 0, KernelModule.Float(Eps), KernelModule.Int(outputs), KernelModule.Int(Columns), KernelModule.Int(tokens)]);
    }

    /// <summary>x / rms(x) * g in float64, as the CPU backend's RMSNorm defines it (without its bf16 rounding).</summary>
    private static double[] Normalize(ReadOnlySpan<float> x, float[] g)
    {
        double squares = 0;
        foreach (float v in x)
        {
            squares += (double)v * v;
        }

        double inverse = 1 / Math.Sqrt((squares / x.Length) + Eps);
        var normed = new double[x.Length];
        for (int k = 0; k < x.Length; k++)
        {
            normed[k] = x[k] * inverse * g[k];
        }

        return normed;
    }

    private static double Dot(ReadOnlySpan<float> row, double[] x)
    {
        double sum = 0;
        for (int k = 0; k < x.Length; k++)
        {
            sum += row[k] * x[k];
        }

        return sum;
    }
}
