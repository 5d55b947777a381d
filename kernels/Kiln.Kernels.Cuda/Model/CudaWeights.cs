using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>One layer's weights on the device. Products are bf16 [out x in]; query/key/value and gate/up are fused.</summary>
public sealed class CudaLayerWeights
{
    public required DeviceBuffer AttentionNorm { get; init; }

    /// <summary>[(q + 2 kv) x hidden].</summary>
    public required DeviceBuffer QueryKeyValue { get; init; }

    public DeviceBuffer? QueryKeyValueBias { get; init; }

    /// <summary>[hidden x q].</summary>
    public required DeviceBuffer Output { get; init; }

    public required DeviceBuffer FeedForwardNorm { get; init; }

    /// <summary>[2 inter x hidden]: gate rows, then up rows.</summary>
    public required DeviceBuffer GateUp { get; init; }

    /// <summary>[hidden x inter].</summary>
    public required DeviceBuffer Down { get; init; }

    public IEnumerable<DeviceBuffer> Buffers()
    {
        yield return AttentionNorm;
        yield return QueryKeyValue;
        if (QueryKeyValueBias is not null)
        {
            yield return QueryKeyValueBias;
        }

        yield return Output;
        yield return FeedForwardNorm;
        yield return GateUp;
        yield return Down;
    }
}

/// <summary>
/// A model's weights in device memory, in bf16 whatever the file stores (F32, F16 and Q8_0 are converted on upload;
/// norms and biases stay float32). Built from loaded weights, or filled with seeded random values on the device.
/// </summary>
public sealed unsafe class CudaWeights : IDisposable
{
    private CudaWeights(DeviceBuffer embedding, CudaLayerWeights[] layers, DeviceBuffer finalNorm, DeviceBuffer classifier)
    {
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        Classifier = classifier;
    }

    /// <summary>[vocab x hidden] bf16.</summary>
    public DeviceBuffer Embedding { get; }

    public IReadOnlyList<CudaLayerWeights> Layers { get; }

    public DeviceBuffer FinalNorm { get; }

    /// <summary>[vocab x hidden] bf16; the embedding buffer itself when the model ties them.</summary>
    public DeviceBuffer Classifier { get; }

    public long Bytes => AllBuffers().Sum(b => b.Bytes);

    /// <summary>Copies <paramref name="weights"/> to the device, converting every matrix to bf16 on the host, one at a time.</summary>
    public static CudaWeights Upload(ModelConfig config, ModelWeights weights, nint stream)
    {
        var layers = new CudaLayerWeights[config.LayerCount];
        for (int i = 0; i < layers.Length; i++)
        {
            var w = weights.Layers[i];
            DeviceBuffer? bias = null;
            if (w.QueryBias is not null || w.KeyBias is not null || w.ValueBias is not null)
            {
                var fused = new float[config.QueryDim + (2 * config.KvDim)];
                w.QueryBias?.CopyTo(fused, 0);
                w.KeyBias?.CopyTo(fused, config.QueryDim);
                w.ValueBias?.CopyTo(fused, config.QueryDim + config.KvDim);
                bias = Floats(fused, stream);
            }

            layers[i] = new CudaLayerWeights
            {
                AttentionNorm = Floats(w.AttentionNorm, stream),
                QueryKeyValue = Matrices(stream, w.Query, w.Key, w.Value),
                QueryKeyValueBias = bias,
                Output = Matrices(stream, w.Output),
                FeedForwardNorm = Floats(w.FeedForwardNorm, stream),
                GateUp = Matrices(stream, w.Gate, w.Up),
                Down = Matrices(stream, w.Down),
            };
        }

        var embedding = Matrices(stream, weights.Embedding);
        var classifier = ReferenceEquals(weights.Classifier, weights.Embedding) ? embedding : Matrices(stream, weights.Classifier);
        return new CudaWeights(embedding, layers, Floats(weights.FinalNorm, stream), classifier);
    }

    /// <summary>
    /// Seeded uniform random bf16 weights made on the device (norm weights 1): how the GPU benchmark gets a
    /// 1.24B-parameter model in milliseconds. Scales follow 1/sqrt(fan-in) so activations stay in range.
    /// </summary>
    public static CudaWeights Random(ModelConfig config, KernelModule kernels, nint stream, ulong seed)
    {
        int h = config.HiddenSize;
        ulong next = seed;
        DeviceBuffer Matrix(long rows, long columns)
        {
            var buffer = new DeviceBuffer(rows * columns * 2);
            kernels.Launch("fill_random_bf16", (1024, 1), 256, stream, [buffer.Pointer, (ulong)(rows * columns), next++, KernelModule.Float(1f / MathF.Sqrt(columns))]);
            return buffer;
        }

        DeviceBuffer Ones(int count) => Floats(Enumerable.Repeat(1f, count).ToArray(), stream);

        var layers = new CudaLayerWeights[config.LayerCount];
        for (int i = 0; i < layers.Length; i++)
        {
            layers[i] = new CudaLayerWeights
            {
                AttentionNorm = Ones(h),
                QueryKeyValue = Matrix(config.QueryDim + (2 * config.KvDim), h),
                Output = Matrix(h, config.QueryDim),
                FeedForwardNorm = Ones(h),
                GateUp = Matrix(2L * config.IntermediateSize, h),
                Down = Matrix(h, config.IntermediateSize),
            };
        }

        var embedding = Matrix(config.VocabSize, h);
        var classifier = config.TiedEmbeddings ? embedding : Matrix(config.VocabSize, h);
        return new CudaWeights(embedding, layers, Ones(h), classifier);
    }

    private static DeviceBuffer Floats(float[] values, nint stream)
    {
        var buffer = new DeviceBuffer((long)values.Length * sizeof(float));
        buffer.Upload<float>(values, stream);
        return buffer;
    }

    /// <summary>Stacks the matrices' rows (same column count) into one bf16 buffer.</summary>
    private static DeviceBuffer Matrices(nint stream, params WeightMatrix[] matrices)
    {
        int columns = matrices[0].Columns;
        long rows = matrices.Sum(m => (long)m.Rows);
        var buffer = new DeviceBuffer(rows * columns * sizeof(ushort));
        var widened = new float[columns];
        const int ChunkRows = 256;
        var chunk = new ushort[ChunkRows * columns];
        long written = 0;
        foreach (var matrix in matrices)
        {
            if (matrix.Columns != columns)
            {
                throw new ArgumentException($"{matrix.Name} has {matrix.Columns} columns; {matrices[0].Name} has {columns}");
            }

            for (int first = 0; first < matrix.Rows; first += ChunkRows)
            {
                int count = Math.Min(ChunkRows, matrix.Rows - first);
                var rowsBf16 = RowsAsBf16(matrix, first, count, widened, chunk);
                buffer.Upload(rowsBf16, stream, written * sizeof(ushort));
                written += (long)count * columns;
            }
        }

        return buffer;
    }

    /// <summary>
    /// Rows [first, first + count) as bf16: a view of the stored rows when they already are bf16 (no widening and
    /// narrowing back), else converted into <paramref name="chunk"/> through <paramref name="widened"/> (one row).
    /// </summary>
    internal static ReadOnlySpan<ushort> RowsAsBf16(WeightMatrix matrix, int first, int count, float[] widened, ushort[] chunk)
    {
        int columns = matrix.Columns;
        if (matrix.Type == WeightType.BF16)
        {
            return new ReadOnlySpan<ushort>(matrix.Data + (matrix.RowBytes * first), count * columns);
        }

        for (int r = 0; r < count; r++)
        {
            matrix.ReadRow(first + r, widened);
            Narrow(widened, chunk.AsSpan(r * columns, columns));
        }

        return chunk.AsSpan(0, count * columns);
    }

    private static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = GgufWriter.ToBFloat16(source[i]);
        }
    }

    private IEnumerable<DeviceBuffer> AllBuffers()
    {
        yield return Embedding;
        foreach (var layer in Layers)
        {
            foreach (var buffer in layer.Buffers())
            {
                yield return buffer;
            }
        }

        yield return FinalNorm;
        if (!ReferenceEquals(Classifier, Embedding))
        {
            yield return Classifier;
        }
    }

    public void Dispose()
    {
        foreach (var buffer in AllBuffers())
        {
            buffer.Dispose();
        }
    }
}
