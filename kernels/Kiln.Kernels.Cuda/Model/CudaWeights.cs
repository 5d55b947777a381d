using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>One layer's weights on the device. Products are [out x in] (<see cref="DeviceMatrix"/>); query/key/value and gate/up are fused.</summary>
public sealed class CudaLayerWeights
{
    public required DeviceBuffer AttentionNorm { get; init; }

    /// <summary>[(q + 2 kv) x hidden].</summary>
    public required DeviceMatrix QueryKeyValue { get; init; }

    public DeviceBuffer? QueryKeyValueBias { get; init; }

    /// <summary>[hidden x q].</summary>
    public required DeviceMatrix Output { get; init; }

    public required DeviceBuffer FeedForwardNorm { get; init; }

    /// <summary>[2 inter x hidden]: gate rows, then up rows.</summary>
    public required DeviceMatrix GateUp { get; init; }

    /// <summary>[hidden x inter].</summary>
    public required DeviceMatrix Down { get; init; }

    public IEnumerable<DeviceMatrix> Matrices()
    {
        yield return QueryKeyValue;
        yield return Output;
        yield return GateUp;
        yield return Down;
    }

    public IEnumerable<DeviceBuffer> Vectors()
    {
        yield return AttentionNorm;
        if (QueryKeyValueBias is not null)
        {
            yield return QueryKeyValueBias;
        }

        yield return FeedForwardNorm;
    }
}

/// <summary>
/// A model's weights in device memory: F16 and Q8_0 matrices as the file stores them, everything else bf16 (see
/// <see cref="DeviceMatrix"/>); norms and biases float32. Built from loaded weights, or filled with seeded random
/// bf16 values on the device.
/// </summary>
public sealed unsafe class CudaWeights : IDisposable
{
    private CudaWeights(DeviceMatrix embedding, CudaLayerWeights[] layers, DeviceBuffer finalNorm, DeviceMatrix classifier)
    {
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        Classifier = classifier;
    }

    /// <summary>[vocab x hidden].</summary>
    public DeviceMatrix Embedding { get; }

    public IReadOnlyList<CudaLayerWeights> Layers { get; }

    public DeviceBuffer FinalNorm { get; }

    /// <summary>[vocab x hidden]; the embedding matrix itself when the model ties them.</summary>
    public DeviceMatrix Classifier { get; }

    public long Bytes => AllMatrices().Sum(m => m.Bytes) + AllVectors().Sum(b => b.Bytes);

    /// <summary>
    /// The formats <see cref="Upload"/> keeps the matrices the products read in (its stacks: QKV, gate and up), so a
    /// kernel module can leave out the products of the others. The embedding is read by its own kernel, in any format.
    /// </summary>
    public static IReadOnlyCollection<WeightFormat> FormatsOf(ModelWeights weights) =>
    [
        .. weights.Layers
            .SelectMany(w => new[] { DeviceMatrix.FormatOf([w.Query, w.Key, w.Value]), DeviceMatrix.FormatOf([w.Output]), DeviceMatrix.FormatOf([w.Gate, w.Up]), DeviceMatrix.FormatOf([w.Down]) })
            .Append(DeviceMatrix.FormatOf([weights.Classifier]))
            .Distinct(),
    ];

    /// <summary>Copies <paramref name="weights"/> to the device a chunk of rows at a time, converting what is not kept as stored.</summary>
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
                QueryKeyValue = DeviceMatrix.Upload(stream, w.Query, w.Key, w.Value),
                QueryKeyValueBias = bias,
                Output = DeviceMatrix.Upload(stream, w.Output),
                FeedForwardNorm = Floats(w.FeedForwardNorm, stream),
                GateUp = DeviceMatrix.Upload(stream, w.Gate, w.Up),
                Down = DeviceMatrix.Upload(stream, w.Down),
            };
        }

        var embedding = DeviceMatrix.Upload(stream, weights.Embedding);
        var classifier = ReferenceEquals(weights.Classifier, weights.Embedding) ? embedding : DeviceMatrix.Upload(stream, weights.Classifier);
        return new CudaWeights(embedding, layers, Floats(weights.FinalNorm, stream), classifier);
    }

    /// <summary>
    /// Seeded uniform random weights made on the device (norm weights 1), bf16 or Q8: how the GPU benchmark gets a
    /// 1.24B-parameter model in milliseconds. Scales follow 1/sqrt(fan-in) so activations stay in range.
    /// </summary>
    public static CudaWeights Random(ModelConfig config, KernelModule kernels, nint stream, ulong seed, WeightFormat format = WeightFormat.Bf16)
    {
        if (format == WeightFormat.F16)
        {
            throw new NotSupportedException("random weights come in bf16 or Q8");
        }

        int h = config.HiddenSize;
        ulong next = seed;
        DeviceMatrix Matrix(int rows, int columns)
        {
            long count = (long)rows * columns;
            float scale = 1f / MathF.Sqrt(columns);
            if (format == WeightFormat.Bf16)
            {
                var buffer = new DeviceBuffer(count * 2);
                kernels.Launch("fill_random_bf16", (1024, 1), 256, stream, [buffer.Pointer, (ulong)count, next++, KernelModule.Float(scale)]);
                return DeviceMatrix.FromBf16(buffer, rows, columns);
            }

            var values = new DeviceBuffer(count);
            var scales = new DeviceBuffer(count / WeightTypeInfo.Q8BlockSize * sizeof(float));
            kernels.Launch("fill_random_i8", (1024, 1), 256, stream, [values.Pointer, (ulong)count, next++]);
            Native.Driver.Check(Native.Driver.cuMemsetD32Async(scales.Pointer, BitConverter.SingleToUInt32Bits(scale / 127f), (nuint)(count / WeightTypeInfo.Q8BlockSize), stream));
            return DeviceMatrix.FromQ8(values, scales, rows, columns);
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
                GateUp = Matrix(2 * config.IntermediateSize, h),
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

    /// <summary>The largest matrix's bytes: whether any product is worth tuning (<see cref="CudaRunnerOptions.TuneMinimumBytes"/>).</summary>
    public long LargestMatrixBytes => AllMatrices().Max(m => m.Bytes);

    /// <summary>The matrices kept in f16 or Q8: the runner sizes the scratch it expands them into for cuBLAS.</summary>
    public IEnumerable<DeviceMatrix> CompactMatrices() => AllMatrices().Where(m => m.Format != WeightFormat.Bf16);

    private IEnumerable<DeviceMatrix> AllMatrices()
    {
        yield return Embedding;
        foreach (var layer in Layers)
        {
            foreach (var matrix in layer.Matrices())
            {
                yield return matrix;
            }
        }

        if (!ReferenceEquals(Classifier, Embedding))
        {
            yield return Classifier;
        }
    }

    private IEnumerable<DeviceBuffer> AllVectors()
    {
        foreach (var layer in Layers)
        {
            foreach (var vector in layer.Vectors())
            {
                yield return vector;
            }
        }

        yield return FinalNorm;
    }

    public void Dispose()
    {
        foreach (var matrix in AllMatrices())
        {
            matrix.Dispose();
        }

        foreach (var vector in AllVectors())
        {
            vector.Dispose();
        }
    }
}
