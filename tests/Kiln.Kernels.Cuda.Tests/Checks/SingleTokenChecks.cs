using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// Every product of gemv.cu has a form for exactly one token (NAME_t1, picked by <see cref="GemvVariant.ForTokens"/>
/// for decode at batch 1). It must do the same arithmetic in the same order as the general form at one token, so
/// the two must agree bit for bit: outputs, residual adds and cache writes.
/// </summary>
public abstract class SingleTokenChecks
{
    // Two query heads and two KV heads of TestDevice.HeadDim: the rows of a fused QKV output.
    private const int QHeads = 2, KvHeads = 2, Rows = (QHeads + (2 * KvHeads)) * TestDevice.HeadDim, Columns = 544, Slots = 8;

    public static TheoryData<string> Products => [.. GemvVariant.Products];

    [Theory]
    [MemberData(nameof(Products))]
    public void SingleTokenForm_GivesTheGeneralFormsBits(string kernel)
    {
        TestDevice.Require();
        string single = GemvVariant.ForTokens(kernel, 1);
        Assert.NotEqual(kernel, single);
        Assert.Equal(kernel, GemvVariant.ForTokens(kernel, 2));

        var format = kernel.Contains("_q8", StringComparison.Ordinal) ? WeightFormat.Q8 : kernel.Contains("_f16", StringComparison.Ordinal) ? WeightFormat.F16 : WeightFormat.Bf16;
        using var w = CompactWeights.Upload(format, TestDevice.Random(2 * Rows * Columns, 41), Columns); // gate/up needs 2 x Rows
        var x = TestDevice.Random(Columns, 42, 2f);
        using var xFloats = TestDevice.Floats(x);
        using var xBf16 = TestDevice.Bf16(x);
        using var norm = TestDevice.Floats(TestDevice.Random(Columns, 43));
        using var bias = TestDevice.Floats(TestDevice.Random(2 * Rows, 44));
        using var positions = TestDevice.Ints([37]);
        using var slots = TestDevice.Ints([5]);
        var inverse = Enumerable.Range(0, TestDevice.HeadDim / 2).Select(i => Math.Pow(10000, -2.0 * i / TestDevice.HeadDim)).ToArray();
        using var inverseBuffer = new DeviceBuffer(inverse.Length * sizeof(double));
        inverseBuffer.Upload<double>(inverse, TestDevice.Stream);
        var residual = TestDevice.Random(Rows, 45, 3f);

        (float[] Output, float[] Keys, float[] Values) Run(string name)
        {
            using var y = kernel.StartsWith("gemv_add", StringComparison.Ordinal) ? TestDevice.Floats(residual) : TestDevice.Poisoned(Rows * 4L);
            using var keys = TestDevice.Poisoned((long)Slots * KvHeads * TestDevice.HeadDim * 2);
            using var values = TestDevice.Poisoned((long)Slots * KvHeads * TestDevice.HeadDim * 2);
            ulong scales = w.ScalesPointer, eps = KernelModule.Float(1e-5f), rows = KernelModule.Int(Rows), columns = KernelModule.Int(Columns), one = KernelModule.Int(1);
            var plain = GemvVariant.All.SingleOrDefault(v => v.Kernel == kernel);
            if (plain is not null)
            {
                TestDevice.Kernels.Launch(name, (plain.Blocks(Rows), 1), (uint)plain.Threads, TestDevice.Stream, [y.Pointer, w.Data.Pointer, xBf16.Pointer, bias.Pointer, rows, columns, one]);
            }
            else if (kernel.StartsWith("gemv_norm_rope", StringComparison.Ordinal))
            {
                Launch256(name, ((Rows / 2) + 7) / 8,
                    [y.Pointer, w.Data.Pointer, xFloats.Pointer, bias.Pointer, norm.Pointer, eps, rows, columns, one, scales,
                     keys.Pointer, values.Pointer, positions.Pointer, slots.Pointer, inverseBuffer.Pointer, KernelModule.Int(QHeads), KernelModule.Int(KvHeads), 1]);
            }
            else
            {
                // The compact plain products (one, two or four rows a warp) and the fused ones share one signature.
                bool normed = kernel.StartsWith("gemv_norm_swiglu", StringComparison.Ordinal);
                int rowsPerWarp = kernel.EndsWith("_r4", StringComparison.Ordinal) ? 4 : kernel.EndsWith("_r2", StringComparison.Ordinal) ? 2 : 1;
                ulong[] arguments = [y.Pointer, w.Data.Pointer, normed ? xFloats.Pointer : xBf16.Pointer, bias.Pointer, normed ? norm.Pointer : 0, eps, rows, columns, one, scales];
                Launch256(name, (Rows + (8 * rowsPerWarp) - 1) / (8 * rowsPerWarp), format == WeightFormat.Bf16 ? arguments[..9] : arguments);
            }

            // gemv_norm_swiglu writes bf16 pairs: reading its outputs as floats compares the same bits.
            int outputs = kernel.StartsWith("gemv_norm_swiglu", StringComparison.Ordinal) ? Rows / 2 : Rows;
            int cache = Slots * KvHeads * TestDevice.HeadDim;
            return (TestDevice.ReadFloats(y, outputs), TestDevice.ReadBf16(keys, cache), TestDevice.ReadBf16(values, cache));
        }

        static void Launch256(string name, int blocks, ReadOnlySpan<ulong> arguments) =>
            TestDevice.Kernels.Launch(name, ((uint)blocks, 1), 256, TestDevice.Stream, arguments);

        var general = Run(kernel);
        var specialised = Run(single);
        Assert.DoesNotContain(general.Output, float.IsNaN); // every output written, so the comparison means something
        Assert.Equal(general.Output, specialised.Output);
        Assert.Equal(general.Keys, specialised.Keys);
        Assert.Equal(general.Values, specialised.Values);
    }
}
