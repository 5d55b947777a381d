using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Models;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// Each kernel against a float64 reference written here, on random inputs, with outputs poisoned (NaN) before the
/// launch so an element the kernel never writes fails the test. bf16 results must be within 1e-2 relative (L2).
/// </summary>
public abstract class KernelChecks
{
    [Fact]
    public void Embedding_GathersRows()
    {
        TestDevice.Require();
        const int Vocab = 100, Hidden = 96;
        var table = TestDevice.Random(Vocab * Hidden, 1);
        int[] ids = [5, 99, 0, 5, 42];
        using var tableBuffer = TestDevice.Bf16(table);
        using var idBuffer = TestDevice.Ints(ids);
        using var x = TestDevice.Poisoned((long)ids.Length * Hidden * 4);
        TestDevice.Kernels.Launch("embed_tokens", ((uint)ids.Length, 1), 256, TestDevice.Stream, [x.Pointer, tableBuffer.Pointer, idBuffer.Pointer, KernelModule.Int(Hidden)]);
        var actual = TestDevice.ReadFloats(x, ids.Length * Hidden);
        var expected = ids.SelectMany(id => table.AsSpan(id * Hidden, Hidden).ToArray()).ToArray();
        Assert.Equal(0, TestDevice.RelativeError(actual, expected));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void RmsNorm_WithResidualAddAndRowSelection_MatchesFloat64(bool withAddend, bool selectRows)
    {
        TestDevice.Require();
        const int Tokens = 7, Hidden = 2048;
        const float Eps = 1e-5f;
        var x = TestDevice.Random(Tokens * Hidden, 2, 3f);
        var addend = TestDevice.Random(Tokens * Hidden, 3);
        var weight = TestDevice.Random(Hidden, 4);
        int[] rows = selectRows ? [6, 2, 3] : [.. Enumerable.Range(0, Tokens)];
        using var xBuffer = TestDevice.Floats(x);
        using var addendBuffer = TestDevice.Floats(addend);
        using var weightBuffer = TestDevice.Floats(weight);
        using var rowBuffer = TestDevice.Ints(rows);
        using var output = TestDevice.Poisoned((long)rows.Length * Hidden * 2);
        TestDevice.Kernels.Launch("add_rmsnorm", ((uint)rows.Length, 1), 256, TestDevice.Stream,
            [xBuffer.Pointer, withAddend ? addendBuffer.Pointer : 0, weightBuffer.Pointer, output.Pointer, selectRows ? rowBuffer.Pointer : 0, KernelModule.Int(Hidden), KernelModule.Float(Eps)]);

        var expected = new double[rows.Length * Hidden];
        var expectedX = x.Select(v => (double)v).ToArray();
        for (int r = 0; r < rows.Length; r++)
        {
            int src = rows[r];
            double squares = 0;
            for (int i = 0; i < Hidden; i++)
            {
                double v = x[(src * Hidden) + i] + (withAddend ? addend[(src * Hidden) + i] : 0);
                expectedX[(src * Hidden) + i] = v;
                squares += v * v;
            }

            double inv = 1 / Math.Sqrt((squares / Hidden) + Eps);
            for (int i = 0; i < Hidden; i++)
            {
                expected[(r * Hidden) + i] = expectedX[(src * Hidden) + i] * inv * weight[i];
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadBf16(output, rows.Length * Hidden), expected), 0, 1e-2);
        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(xBuffer, Tokens * Hidden), expectedX), 0, 1e-6);
    }

    [Theory]
    [InlineData(RopeLayout.HalfSplit, false)]
    [InlineData(RopeLayout.AdjacentPairs, false)]
    [InlineData(RopeLayout.HalfSplit, true)]
    public void RopeAndKvWrite_RotatesAndFillsSlots_MatchesFloat64(RopeLayout layout, bool llama3)
    {
        TestDevice.Require();
        const int QHeads = 4, KvHeads = 2, D = TestDevice.HeadDim, Slots = 64;
        var config = new ModelConfig
        {
            Architecture = "llama",
            VocabSize = 10,
            HiddenSize = QHeads * D,
            IntermediateSize = 8,
            LayerCount = 1,
            HeadCount = QHeads,
            KvHeadCount = KvHeads,
            HeadDim = D,
            MaxPositions = 131072,
            RopeTheta = 500000,
            RopeLayout = layout,
            RopeScaling = llama3 ? new Llama3RopeScaling(8, 1, 4, 8192) : null,
        };
        double[] inv = RopeTable.Compute(config, null);
        int[] positions = [0, 1, 17, 4000, 100000];
        int[] slots = [3, 63, 0, 17, 40];
        int tokens = positions.Length;
        int stride = (QHeads + (2 * KvHeads)) * D;
        var qkv = TestDevice.Random(tokens * stride, 5, 2f);
        using var qkvBuffer = TestDevice.Floats(qkv);
        using var keys = TestDevice.Poisoned((long)Slots * KvHeads * D * 2);
        using var values = TestDevice.Poisoned((long)Slots * KvHeads * D * 2);
        using var positionBuffer = TestDevice.Ints(positions);
        using var slotBuffer = TestDevice.Ints(slots);
        using var invBuffer = new DeviceBuffer(inv.Length * sizeof(double));
        invBuffer.Upload<double>(inv, TestDevice.Stream);
        TestDevice.Kernels.Launch("rope_write_kv", ((uint)tokens, 1), 128, TestDevice.Stream,
            [qkvBuffer.Pointer, keys.Pointer, values.Pointer, positionBuffer.Pointer, slotBuffer.Pointer, invBuffer.Pointer,
             KernelModule.Int(QHeads), KernelModule.Int(KvHeads), KernelModule.Int(layout == RopeLayout.HalfSplit ? 1 : 0)]);

        var expected = qkv.Select(v => (double)v).ToArray();
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < QHeads + KvHeads; h++)
            {
                int head = (t * stride) + (h * D);
                for (int i = 0; i < D / 2; i++)
                {
                    int a = head + (layout == RopeLayout.HalfSplit ? i : 2 * i);
                    int b = head + (layout == RopeLayout.HalfSplit ? i + (D / 2) : (2 * i) + 1);
                    double angle = positions[t] * inv[i];
                    double x0 = qkv[a], x1 = qkv[b];
                    expected[a] = (x0 * Math.Cos(angle)) - (x1 * Math.Sin(angle));
                    expected[b] = (x0 * Math.Sin(angle)) + (x1 * Math.Cos(angle));
                }
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(qkvBuffer, qkv.Length), expected), 0, 1e-5);
        var keyCache = TestDevice.ReadBf16(keys, Slots * KvHeads * D);
        var valueCache = TestDevice.ReadBf16(values, Slots * KvHeads * D);
        int kvDim = KvHeads * D;
        for (int t = 0; t < tokens; t++)
        {
            int k = (t * stride) + (QHeads * D);
            Assert.InRange(TestDevice.RelativeError(keyCache.AsSpan(slots[t] * kvDim, kvDim), expected.AsSpan(k, kvDim)), 0, 1e-2);
            Assert.InRange(TestDevice.RelativeError(valueCache.AsSpan(slots[t] * kvDim, kvDim), expected.AsSpan(k + kvDim, kvDim)), 0, 1e-2);
        }

        Assert.True(float.IsNaN(keyCache[1 * kvDim]), "a slot no token maps to must be left alone");
    }

    [Theory]
    [InlineData(16, 4)] // a block serves a KV head's four query heads
    [InlineData(5, 4)]
    [InlineData(5, 4, true)] // the first chunk's keys and values loaded before the kernel waits, as in a decode step
    [InlineData(16, 1)] // a block per query head, as for models whose group is too large
    [InlineData(7, 1, true)]
    [InlineData(5, 4, true, 2)] // the 701-key context in two splits of two and one spans of 256 keys
    [InlineData(16, 4, false, 4)] // three splits of one span, a fourth with nothing to do
    [InlineData(7, 1, true, 16)]
    public void PagedAttention_MixedPrefillChunkAndDecodes_MatchesFloat64(int blockSize, int gqaGroup, bool keysBeforeWait = false, int splits = 1)
    {
        TestDevice.Require();
        using var kernels = new KernelModule(TestDevice.Device, TestDevice.HeadDim, TestDevice.CacheDirectory, gqaGroup);
        const int QHeads = 8, KvHeads = 2, D = TestDevice.HeadDim, Blocks = 40, TableStride = 150;
        int kvDim = KvHeads * D;
        // Four sequences: a prefill chunk of 6 tokens over a cached prefix of 30, decodes at 90 and at 700 (three spans
        // of 256 keys, so split runs merge), a first token at 0. Table rows reuse the 40 physical blocks.
        int[] tokenRows = [0, 0, 0, 0, 0, 0, 1, 3, 2];
        int[] positions = [30, 31, 32, 33, 34, 35, 90, 700, 0];
        var random = new Random(6);
        var order = Enumerable.Range(0, Blocks).OrderBy(_ => random.Next()).ToArray();
        var tables = new int[4 * TableStride];
        for (int i = 0; i < tables.Length; i++)
        {
            tables[i] = order[i % Blocks];
        }

        int tokens = positions.Length;
        int groups = QHeads / gqaGroup;
        int stride = (QHeads + (2 * KvHeads)) * D;
        var qkv = TestDevice.Random(tokens * stride, 7);
        var keys = TestDevice.Random(Blocks * blockSize * kvDim, 8);
        var values = TestDevice.Random(Blocks * blockSize * kvDim, 9);
        using var qkvBuffer = TestDevice.Floats(qkv);
        using var keyBuffer = TestDevice.Bf16(keys);
        using var valueBuffer = TestDevice.Bf16(values);
        using var tableBuffer = TestDevice.Ints(tables);
        using var rowBuffer = TestDevice.Ints(tokenRows);
        using var positionBuffer = TestDevice.Ints(positions);
        using var partials = TestDevice.Floats(new float[tokens * QHeads * splits * (D + 2)]);
        using var done = TestDevice.Ints(new int[tokens * groups]);
        float scale = 1f / MathF.Sqrt(D);
        // Twice, as a graph replays it: the last split to finish must have reset its counter for the second run.
        var outputs = new float[2][];
        for (int run = 0; run < 2; run++)
        {
            using var output = TestDevice.Poisoned((long)tokens * QHeads * D * 2);
            kernels.Launch("paged_attention", ((uint)tokens, (uint)(groups * splits)), 256, TestDevice.Stream,
                [output.Pointer, qkvBuffer.Pointer, keyBuffer.Pointer, valueBuffer.Pointer, tableBuffer.Pointer, KernelModule.Int(TableStride),
                 rowBuffer.Pointer, positionBuffer.Pointer, KernelModule.Int(QHeads), KernelModule.Int(KvHeads), KernelModule.Int(blockSize), KernelModule.Float(scale),
                 KernelModule.Int(keysBeforeWait ? 1 : 0), // launched alone, early key loads read what they would after the wait
                 KernelModule.Int(splits), partials.Pointer, done.Pointer]);
            outputs[run] = TestDevice.ReadBf16(output, tokens * QHeads * D);
        }

        Assert.Equal(outputs[0], outputs[1]);
        var counters = new int[tokens * groups];
        done.Download<int>(counters, TestDevice.Stream);
        Assert.All(counters, counter => Assert.Equal(0, counter));

        var expected = new double[tokens * QHeads * D];
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < QHeads; h++)
            {
                int kvh = h / (QHeads / KvHeads);
                var scores = new double[positions[t] + 1];
                for (int j = 0; j <= positions[t]; j++)
                {
                    int slot = (tables[(tokenRows[t] * TableStride) + (j / blockSize)] * blockSize) + (j % blockSize);
                    double dot = 0;
                    for (int d = 0; d < D; d++)
                    {
                        dot += qkv[(t * stride) + (h * D) + d] * scale * keys[(slot * kvDim) + (kvh * D) + d];
                    }

                    scores[j] = dot;
                }

                double max = scores.Max();
                double sum = scores.Sum(s => Math.Exp(s - max));
                for (int j = 0; j <= positions[t]; j++)
                {
                    int slot = (tables[(tokenRows[t] * TableStride) + (j / blockSize)] * blockSize) + (j % blockSize);
                    double p = Math.Exp(scores[j] - max) / sum;
                    for (int d = 0; d < D; d++)
                    {
                        expected[(t * QHeads * D) + (h * D) + d] += p * values[(slot * kvDim) + (kvh * D) + d];
                    }
                }
            }
        }

        // Token by token: the long context's output is small beside a first token's, which is its own value.
        for (int t = 0; t < tokens; t++)
        {
            int n = QHeads * D;
            double error = TestDevice.RelativeError(outputs[0].AsSpan(t * n, n), expected.AsSpan(t * n, n));
            Assert.True(error < 1e-2, $"token {t} at position {positions[t]}: relative error {error:E2}");
        }
    }

    [Fact]
    public void SwiGlu_MatchesFloat64()
    {
        TestDevice.Require();
        const int Tokens = 3, Inter = 1000;
        var gateUp = TestDevice.Random(Tokens * 2 * Inter, 10, 4f);
        using var input = TestDevice.Floats(gateUp);
        using var output = TestDevice.Poisoned(Tokens * Inter * 2);
        TestDevice.Kernels.Launch("swiglu", (4, 1), 256, TestDevice.Stream, [output.Pointer, input.Pointer, KernelModule.Int(Inter), KernelModule.Int(Tokens)]);
        var expected = new double[Tokens * Inter];
        for (int t = 0; t < Tokens; t++)
        {
            for (int i = 0; i < Inter; i++)
            {
                double g = gateUp[(t * 2 * Inter) + i];
                expected[(t * Inter) + i] = g / (1 + Math.Exp(-g)) * gateUp[(t * 2 * Inter) + Inter + i];
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadBf16(output, expected.Length), expected), 0, 1e-2);
    }

    [Theory]
    [InlineData(1, false, "gemv_bf16")]
    [InlineData(3, true, "gemv_bf16_u8")]
    [InlineData(8, false, "gemv_bf16_r2")]
    [InlineData(2, true, "gemv_bf16_r4")]
    [InlineData(5, false, "gemv_bf16_b128")]
    public void Gemv_SmallBatchProduct_MatchesFloat64(int tokens, bool withBias, string kernel)
    {
        TestDevice.Require();
        const int Rows = 301, Columns = 2056; // rows that leave a partial block and warp, columns not a multiple of 256
        var weights = TestDevice.Random(Rows * Columns, 11);
        var x = TestDevice.Random(tokens * Columns, 12);
        var bias = TestDevice.Random(Rows, 13);
        using var w = TestDevice.Bf16(weights);
        using var xb = TestDevice.Bf16(x);
        using var biasBuffer = TestDevice.Floats(bias);
        using var y = TestDevice.Poisoned((long)tokens * Rows * 4);
        var variant = Model.GemvVariant.All.Single(v => v.Kernel == kernel);
        TestDevice.Kernels.Launch(kernel, (variant.Blocks(Rows), 1), (uint)variant.Threads, TestDevice.Stream,
            [y.Pointer, w.Pointer, xb.Pointer, withBias ? biasBuffer.Pointer : 0, KernelModule.Int(Rows), KernelModule.Int(Columns), KernelModule.Int(tokens)]);
        var expected = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < Rows; r++)
            {
                double sum = withBias ? bias[r] : 0;
                for (int k = 0; k < Columns; k++)
                {
                    sum += (double)weights[(r * Columns) + k] * x[(t * Columns) + k];
                }

                expected[(t * Rows) + r] = sum;
            }
        }

        Assert.InRange(TestDevice.RelativeError(TestDevice.ReadFloats(y, expected.Length), expected), 0, 1e-5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)] // slices of uneven length
    [InlineData(32)]
    public void Argmax_PicksTheLargestLogitOfEachRow_AndReplays(int slices)
    {
        TestDevice.Require();
        const int Rows = 5, Vocab = 128256;
        var logits = TestDevice.Random(Rows * Vocab, 14, 10f);
        logits[(3 * Vocab) + 77] = 50f;
        logits[(3 * Vocab) + 78] = 50f; // a tie goes to the lower id, as on the CPU
        logits[(4 * Vocab) + Vocab - 1] = 60f; // the last id of the last slice
        using var input = TestDevice.Floats(logits);
        using var scratch = new DeviceBuffer(((2L * Rows * slices) + Rows) * 4);
        scratch.Fill(0, TestDevice.Stream);
        ulong values = scratch.Pointer, ids = values + (ulong)(Rows * slices * 4), done = ids + (ulong)(Rows * slices * 4);
        var expected = Enumerable.Range(0, Rows).Select(r =>
        {
            var row = logits.AsSpan(r * Vocab, Vocab);
            return row.IndexOf(System.Numerics.Tensors.TensorPrimitives.Max(row));
        }).ToArray();

        // Twice over the same scratch, as a CUDA graph replays it: the kernel must have reset its counters.
        for (int launch = 0; launch < 2; launch++)
        {
            using var output = TestDevice.Poisoned(Rows * 4);
            TestDevice.Kernels.Launch("argmax_sliced", (Rows, (uint)slices), 256, TestDevice.Stream,
                [output.Pointer, input.Pointer, KernelModule.Int(Vocab), values, ids, done]);
            var actual = new int[Rows];
            output.Download<int>(actual, TestDevice.Stream);
            Assert.Equal(expected, actual);
        }

        Assert.Equal(77, expected[3]);
        Assert.Equal(Vocab - 1, expected[4]);
    }
}
