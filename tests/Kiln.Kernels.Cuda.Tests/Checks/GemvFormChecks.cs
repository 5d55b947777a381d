using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The forms of a gemv.cu product must do the same arithmetic in the same order, so they must agree bit for bit
/// (outputs, residual adds and cache writes): the form for exactly one token (NAME_t1, picked by
/// <see cref="GemvVariant.ForTokens"/> for decode at batch 1) with the general one, and every alternative the warm-up
/// trials may pick (<see cref="GemvChoices"/>) with the default, at one token and at several.
/// </summary>
public abstract class GemvFormChecks
{
    // Two query heads and two KV heads of TestDevice.HeadDim: the rows of a fused QKV output.
    private const int QHeads = 2, KvHeads = 2, Rows = (QHeads + (2 * KvHeads)) * TestDevice.HeadDim, Columns = 544, Slots = 8, Tokens = 3;

    public static TheoryData<string> Products => [.. GemvVariant.Products];

    /// <summary>Every family of interchangeable kernels (a fused bf16 name, or "gemv" for the plain variants) in every format.</summary>
    public static TheoryData<string, WeightFormat> Families =>
        [.. from family in FamilyNames from format in Enum.GetValues<WeightFormat>() select (family, format)];

    private static readonly string[] FamilyNames = ["gemv", "gemv_norm_rope", "gemv_add", "gemv_norm_swiglu"];

    [Theory]
    [MemberData(nameof(Products))]
    public void SingleTokenForm_GivesTheGeneralFormsBits(string kernel)
    {
        TestDevice.Require();
        string single = GemvVariant.ForTokens(kernel, 1);
        Assert.NotEqual(kernel, single);
        Assert.Equal(kernel, GemvVariant.ForTokens(kernel, 2));

        using var inputs = new Inputs(FormatOf(kernel));
        var general = inputs.Run(kernel, 1);
        var specialised = inputs.Run(single, 1);
        Assert.DoesNotContain(general.Output, float.IsNaN); // every output written, so the comparison means something
        Assert.Equal(general.Output, specialised.Output);
        Assert.Equal(general.Keys, specialised.Keys);
        Assert.Equal(general.Values, specialised.Values);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryAlternative_GivesTheDefaultsBits(string family, WeightFormat format)
    {
        TestDevice.Require();
        string[] kernels = family == "gemv"
            ? [.. GemvVariant.Alternatives(format).Select(v => format == WeightFormat.Bf16 ? v.Kernel : v.CompactKernel(format))]
            : [.. GemvVariant.Alternatives(family).Select(k => GemvVariant.ForFormat(k, format))];
        Assert.True(kernels.Length > 1, $"{family} has one kernel: nothing to choose from");

        using var inputs = new Inputs(format);
        foreach (int tokens in (int[])[1, Tokens])
        {
            var expected = inputs.Run(GemvVariant.ForTokens(kernels[0], tokens), tokens);
            Assert.DoesNotContain(expected.Output, float.IsNaN);
            foreach (string kernel in kernels.Skip(1))
            {
                var actual = inputs.Run(GemvVariant.ForTokens(kernel, tokens), tokens);
                Assert.True(expected.Output.SequenceEqual(actual.Output), $"{kernel} at {tokens} tokens differs from {kernels[0]}");
                Assert.Equal(expected.Keys, actual.Keys);
                Assert.Equal(expected.Values, actual.Values);
            }
        }
    }

    private static WeightFormat FormatOf(string kernel) =>
        kernel.Contains("_q8", StringComparison.Ordinal) ? WeightFormat.Q8 : kernel.Contains("_f16", StringComparison.Ordinal) ? WeightFormat.F16 : WeightFormat.Bf16;

    /// <summary>One product's inputs on the device, for up to <see cref="Tokens"/> tokens, and a launcher for any of gemv.cu's kernels over them.</summary>
    private sealed class Inputs : IDisposable
    {
        private readonly WeightFormat _format;
        private readonly CompactWeights _weights;
        private readonly DeviceBuffer _xFloats, _xBf16, _norm, _bias, _positions, _slots, _inverse;
        private readonly float[] _residual;

        public Inputs(WeightFormat format)
        {
            _format = format;
            _weights = CompactWeights.Upload(format, TestDevice.Random(2 * Rows * Columns, 41), Columns); // gate/up needs 2 x Rows
            var x = TestDevice.Random(Tokens * Columns, 42, 2f);
            _xFloats = TestDevice.Floats(x);
            _xBf16 = TestDevice.Bf16(x);
            _norm = TestDevice.Floats(TestDevice.Random(Columns, 43));
            _bias = TestDevice.Floats(TestDevice.Random(2 * Rows, 44));
            _positions = TestDevice.Ints([37, 2, 90]);
            _slots = TestDevice.Ints([5, 0, 7]);
            var inverse = Enumerable.Range(0, TestDevice.HeadDim / 2).Select(i => Math.Pow(10000, -2.0 * i / TestDevice.HeadDim)).ToArray();
            _inverse = new DeviceBuffer(inverse.Length * sizeof(double));
            _inverse.Upload<double>(inverse, TestDevice.Stream);
            _residual = TestDevice.Random(Tokens * Rows, 45, 3f);
        }

        /// <summary>Launches <paramref name="name"/> over the first <paramref name="tokens"/> tokens; returns its outputs and the cache it wrote.</summary>
        public (float[] Output, float[] Keys, float[] Values) Run(string name, int tokens)
        {
            string product = GemvVariant.ProductOf(name);
            using var y = product.StartsWith("gemv_add", StringComparison.Ordinal) ? TestDevice.Floats(_residual) : TestDevice.Poisoned((long)Tokens * Rows * 4);
            using var keys = TestDevice.Poisoned((long)Slots * KvHeads * TestDevice.HeadDim * 2);
            using var values = TestDevice.Poisoned((long)Slots * KvHeads * TestDevice.HeadDim * 2);
            ulong scales = _weights.ScalesPointer, eps = KernelModule.Float(1e-5f), rows = KernelModule.Int(Rows), columns = KernelModule.Int(Columns), count = KernelModule.Int(tokens);
            var plain = GemvVariant.All.SingleOrDefault(v => v.Kernel == product);
            bool swiglu = product.StartsWith("gemv_norm_swiglu", StringComparison.Ordinal);
            if (plain is not null)
            {
                TestDevice.Kernels.Launch(name, (plain.Blocks(Rows), 1), (uint)plain.Threads, TestDevice.Stream, [y.Pointer, _weights.Data.Pointer, _xBf16.Pointer, _bias.Pointer, rows, columns, count]);
            }
            else if (product.StartsWith("gemv_norm_rope", StringComparison.Ordinal))
            {
                Launch256(name, ((Rows / 2) + 7) / 8,
                    [y.Pointer, _weights.Data.Pointer, _xFloats.Pointer, _bias.Pointer, _norm.Pointer, eps, rows, columns, count, scales,
                     keys.Pointer, values.Pointer, _positions.Pointer, _slots.Pointer, _inverse.Pointer, KernelModule.Int(QHeads), KernelModule.Int(KvHeads), 1]);
            }
            else
            {
                // The compact plain products (one, two or four rows a warp) and the fused ones share one signature.
                int rowsPerWarp = product.EndsWith("_r4", StringComparison.Ordinal) ? 4 : product.EndsWith("_r2", StringComparison.Ordinal) ? 2 : 1;
                ulong[] arguments = [y.Pointer, _weights.Data.Pointer, swiglu ? _xFloats.Pointer : _xBf16.Pointer, _bias.Pointer, swiglu ? _norm.Pointer : 0, eps, rows, columns, count, scales];
                Launch256(name, (Rows + (8 * rowsPerWarp) - 1) / (8 * rowsPerWarp), _format == WeightFormat.Bf16 ? arguments[..9] : arguments);
            }

            // gemv_norm_swiglu writes Rows bf16 a token: reading them as floats, two at a time, compares the same bits.
            int outputs = tokens * (swiglu ? Rows / 2 : Rows);
            int cache = Slots * KvHeads * TestDevice.HeadDim;
            return (TestDevice.ReadFloats(y, outputs), TestDevice.ReadBf16(keys, cache), TestDevice.ReadBf16(values, cache));
        }

        private static void Launch256(string name, int blocks, ReadOnlySpan<ulong> arguments) =>
            TestDevice.Kernels.Launch(name, ((uint)blocks, 1), 256, TestDevice.Stream, arguments);

        public void Dispose()
        {
            foreach (var buffer in new[] { _xFloats, _xBf16, _norm, _bias, _positions, _slots, _inverse })
            {
                buffer.Dispose();
            }

            _weights.Dispose();
        }
    }
}
