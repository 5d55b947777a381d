using Kiln.Runtime.Cpu;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Tensors;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Kernels;

/// <summary>
/// MatMulKernel on every storage type: against a float64 dot product over the dequantized row, and bit-identical per
/// token whatever the number of tokens in the step (a few tokens run the fused kernels on the stored rows, many widen
/// the tiles first; the engine's batched-vs-alone equality rests on both giving the same bits).
/// </summary>
public class MatMulKernelTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 17, 70];

    public static TheoryData<WeightType, int, int> Shapes() => new()
    {
        { WeightType.F32, 5, 13 },
        { WeightType.F32, 37, 100 },
        { WeightType.F16, 1, 8 },
        { WeightType.F16, 5, 13 },
        { WeightType.F16, 16, 64 },
        { WeightType.F16, 37, 100 },
        { WeightType.F16, 70, 771 },
        { WeightType.BF16, 1, 7 },
        { WeightType.BF16, 5, 13 },
        { WeightType.BF16, 37, 100 },
        { WeightType.BF16, 70, 771 },
        { WeightType.Q8_0, 1, 32 },
        { WeightType.Q8_0, 7, 96 },
        { WeightType.Q8_0, 37, 256 },
        { WeightType.Q8_0, 70, 768 },
        { WeightType.Q4_0, 5, 64 },
        { WeightType.Q4_0, 37, 256 },
        { WeightType.Q4_1, 7, 96 },
        { WeightType.Q5_0, 37, 256 },
        { WeightType.Q5_1, 7, 96 },
        { WeightType.Q2_K, 5, 256 },
        { WeightType.Q2_K, 37, 512 },
        { WeightType.Q3_K, 37, 256 },
        { WeightType.Q4_K, 5, 256 },
        { WeightType.Q4_K, 70, 768 },
        { WeightType.Q5_K, 37, 512 },
        { WeightType.Q6_K, 7, 256 },
        { WeightType.Q6_K, 70, 768 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Run_MatchesFloat64DotOverDequantizedRows(WeightType type, int rows, int columns)
    {
        using var weights = new TestWeights(type, rows, columns, seed: (rows * 1000) + columns);
        var w = weights.Matrix;
        var dequantized = Dequantize(w);
        foreach (int tokens in TokenCounts)
        {
            float[] x = RandomInputs(tokens, columns, seed: tokens);
            float[] y = Multiply(w, x, tokens);
            for (int t = 0; t < tokens; t++)
            {
                for (int r = 0; r < rows; r++)
                {
                    double exact = 0, magnitude = 0;
                    for (int c = 0; c < columns; c++)
                    {
                        double product = dequantized[r][c] * (double)x[(t * columns) + c];
                        exact += product;
                        magnitude += Math.Abs(product);
                    }

                    // A float32 sum over 8 lanes of n/8 terms each, then the lanes and the tail: (n/8 + 8) roundings.
                    double bound = ((columns / 8) + 8) * Math.Pow(2, -24) * magnitude;
                    double error = Math.Abs(y[(t * rows) + r] - exact);
                    Assert.True(error <= bound, $"{type} {rows}x{columns}, {tokens} tokens, y[{t}, {r}] = {y[(t * rows) + r]:R}, exact {exact:R}, error {error:E3} > {bound:E3}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Run_TokenResultsDoNotDependOnTokensInStep(WeightType type, int rows, int columns)
    {
        using var weights = new TestWeights(type, rows, columns, seed: 7);
        var w = weights.Matrix;

        // 70 tokens: widened tiles for every type, three token tiles, the last one odd.
        const int Tokens = 70;
        Assert.True(Tokens >= MatMulKernel.WidenFromTokens(type));
        float[] x = RandomInputs(Tokens, columns, seed: 3);
        float[] all = Multiply(w, x, Tokens);
        for (int t = 0; t < Tokens; t++)
        {
            float[] alone = Multiply(w, x.AsSpan(t * columns, columns).ToArray(), 1);
            for (int r = 0; r < rows; r++)
            {
                Assert.True(
                    BitConverter.SingleToUInt32Bits(alone[r]) == BitConverter.SingleToUInt32Bits(all[(t * rows) + r]),
                    $"{type} {rows}x{columns}: token {t}, row {r}: alone {alone[r]:R}, in a step of {Tokens} {all[(t * rows) + r]:R}");
            }
        }

        // Fused 4x2 and 4x1 kernels (and widened F16 at 17) against the widened tiles.
        foreach (int tokens in TokenCounts)
        {
            float[] part = Multiply(w, x.AsSpan(0, tokens * columns).ToArray(), tokens);
            Assert.Equal(all.AsSpan(0, tokens * rows).ToArray(), part);
        }
    }

    [Theory]
    [InlineData(WeightType.F16)]
    [InlineData(WeightType.Q8_0)]
    public void Run_AddsBias(WeightType type)
    {
        using var weights = new TestWeights(type, 20, 64, seed: 11);
        var w = weights.Matrix;
        float[] bias = [.. Enumerable.Range(0, 20).Select(i => i * 0.25f)];
        foreach (int tokens in new[] { 1, 5 })
        {
            float[] x = RandomInputs(tokens, 64, seed: 5);
            float[] plain = Multiply(w, x, tokens);
            float[] biased = Multiply(w, x, tokens, bias);
            for (int i = 0; i < plain.Length; i++)
            {
                Assert.Equal(plain[i] + bias[i % 20], biased[i]);
            }
        }
    }

    private static unsafe float[] Multiply(WeightMatrix w, float[] x, int tokens, float[]? bias = null)
    {
        using var pool = new WorkerPool(2);
        var kernel = new MatMulKernel(pool.WorkerCount, w.Columns);
        var y = new float[tokens * w.Rows];
        fixed (float* px = x, py = y)
        {
            kernel.Run(pool, w, px, py, tokens, bias);
        }

        return y;
    }

    /// <summary>The block types decoded by the tests' own reading of ggml's layouts; the float types as stored.</summary>
    private static unsafe double[][] Dequantize(WeightMatrix w)
    {
        if (WeightTypeInfo.IsBlocked(w.Type))
        {
            var ggml = Enum.Parse<GgmlType>(w.Type.ToString());
            return [.. Enumerable.Range(0, w.Rows).Select(r =>
                GgmlBlocks.Decode(ggml, new ReadOnlySpan<byte>(w.Data + (w.RowBytes * r), (int)w.RowBytes), w.Columns).Select(v => (double)v).ToArray())];
        }

        var row = new float[w.Columns];
        var rows = new double[w.Rows][];
        for (int r = 0; r < w.Rows; r++)
        {
            w.ReadRow(r, row);
            rows[r] = [.. row.Select(v => (double)v)];
        }

        return rows;
    }

    private static float[] RandomInputs(int tokens, int columns, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, tokens * columns).Select(_ => (float)((random.NextDouble() * 2) - 1))];
    }
}
