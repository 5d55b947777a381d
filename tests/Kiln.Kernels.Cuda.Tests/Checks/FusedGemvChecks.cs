using Kiln.Kernels.Cuda.Device;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The fused decode-layer products of gemv.cu against float64: RMSNorm inside the product (gemv_norm), the residual
/// add inside it (gemv_add), and RMSNorm plus SwiGLU around the gate/up product (gemv_norm_swiglu).
/// </summary>
public abstract class FusedGemvChecks
{
    private const int Rows = 301, Columns = 2056; // a partial block and warp; columns a multiple of 8, not of 256
    private const float Eps = 1e-5f;

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, true)]
    [InlineData(8, false)]
    public void NormedProduct_IsTheProductOfTheRmsNormedStream(int tokens, bool withBias)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(Rows * Columns, 21);
        var x = TestDevice.Random(tokens * Columns, 22, 3f);
        var norm = TestDevice.Random(Columns, 23);
        var bias = TestDevice.Random(Rows, 24);
        using var w = TestDevice.Bf16(weights);
        using var xBuffer = TestDevice.Floats(x);
        using var normBuffer = TestDevice.Floats(norm);
        using var biasBuffer = TestDevice.Floats(bias);
        using var y = TestDevice.Poisoned((long)tokens * Rows * 4);
        Launch("gemv_norm", Rows, y, w, xBuffer, withBias ? biasBuffer : null, normBuffer, tokens);

        var expected = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
        {
            var normed = Normalize(x.AsSpan(t * Columns, Columns), norm);
            for (int r = 0; r < Rows; r++)
            {
                expected[(t * Rows) + r] = Dot(weights.AsSpan(r * Columns, Columns), normed) + (withBias ? bias[r] : 0);
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(y, expected.Length), expected), 0, 1e-5);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(3, true)]
    [InlineData(8, false)]
    public void AddingProduct_AddsIntoTheResidualStream(int tokens, bool withBias)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(Rows * Columns, 25);
        var x = TestDevice.Random(tokens * Columns, 26);
        var residual = TestDevice.Random(tokens * Rows, 27, 4f);
        var bias = TestDevice.Random(Rows, 28);
        using var w = TestDevice.Bf16(weights);
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
    [InlineData(1)]
    [InlineData(6)]
    public void NormedSwiGluProduct_IsSiluOfGateTimesUp(int tokens)
    {
        TestDevice.Require();
        var weights = TestDevice.Random(2 * Rows * Columns, 29); // gate rows, then up rows: the fused gate/up weight
        var x = TestDevice.Random(tokens * Columns, 30, 3f);
        var norm = TestDevice.Random(Columns, 31);
        using var w = TestDevice.Bf16(weights);
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

    private static void Launch(string kernel, int outputs, DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer? bias, DeviceBuffer? norm, int tokens) =>
        TestDevice.Kernels.Launch(kernel, ((uint)((outputs + 7) / 8), 1), 256, TestDevice.Stream,
            [y.Pointer, w.Pointer, x.Pointer, bias?.Pointer ?? 0, norm?.Pointer ?? 0, KernelModule.Float(Eps),
             KernelModule.Int(outputs), KernelModule.Int(Columns), KernelModule.Int(tokens)]);

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
