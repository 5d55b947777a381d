using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// The CUDA backend's forward pass: the same flat arrays as the CPU runner (<see cref="ForwardBatch"/>), a bf16 model
/// and KV pool in device memory, NVRTC-compiled kernels for everything but the products (cuBLAS, or a matrix-vector
/// kernel at a handful of tokens), float32 residual stream and accumulation. Decode steps replay CUDA graphs.
/// One runner drives one GPU from whichever thread calls it (it makes its context current each step).
/// </summary>
public sealed unsafe partial class CudaModelRunner : IModelRunner
{
    private const int GemvMaxTokens = 8;
    private readonly CudaDevice _device;
    private readonly bool _ownsDevice;
    private readonly nint _stream;
    private readonly nint _blas;
    private readonly DeviceBuffer _workspace;
    private readonly DeviceBuffer? _expanded;
    private readonly KernelModule _kernels;
    private readonly CudaWeights _weights;
    private readonly NcclCommunicator? _communicator;
    private readonly CudaRunnerOptions _options;
    private readonly DeviceBuffer _x;
    private readonly DeviceBuffer _normed;
    private readonly DeviceBuffer _qkv;
    private readonly DeviceBuffer _attended;
    private readonly DeviceBuffer _projected;
    private readonly DeviceBuffer _gateUp;
    private readonly DeviceBuffer _activated;
    private readonly DeviceBuffer _finalNormed;
    private readonly DeviceBuffer _logits;
    private readonly DeviceBuffer _sampled;
    private readonly DeviceBuffer _argmaxScratch;
    private readonly int _argmaxSlices;
    private readonly AttentionSplits _attentionSplits;
    private readonly DeviceBuffer _attentionPartials;
    private readonly DeviceBuffer _attentionDone;
    private readonly DeviceSampler _sampler;
    private readonly DeviceBuffer _inverseFrequencies;
    private readonly DeviceBuffer _stepArrays;
    private readonly PinnedBuffer<int> _hostStep;
    private readonly int[] _tokenRows;
    private readonly Dictionary<int, nint> _graphs = [];
    private readonly GemvChoices _gemv;
    private readonly bool _halfSplit;
    private bool _disposed;

    /// <summary>Uploads a loaded model to GPU <see cref="CudaRunnerOptions.Device"/> (bf16) and compiles the kernels.</summary>
    public CudaModelRunner(LoadedModel model, CudaRunnerOptions? options = null)
        : this(model.Config, model.Weights.RopeFactors, options ?? new(), null, null, CudaWeights.FormatsOf(model.Weights), (kernels, stream) => CudaWeights.Upload(model.Config, model.Weights, stream))
    {
    }

    /// <summary>
    /// A runner on <paramref name="device"/> (opened from the options when null) whose weights come from
    /// <paramref name="weights"/>: uploaded, random on the device, or a tensor-parallel rank's shard with its communicator.
    /// Its kernels have products for <paramref name="weightFormats"/>, the formats those weights come in.
    /// </summary>
    internal CudaModelRunner(ModelConfig config, float[]? ropeFactors, CudaRunnerOptions options, CudaDevice? device, NcclCommunicator? communicator,
                             IReadOnlyCollection<WeightFormat> weightFormats, Func<KernelModule, nint, CudaWeights> weights, bool ownsDevice = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBatchTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxLogitRows);
        if (config.QkNorm)
        {
            // Qwen3's per-head query/key norms have no kernel yet: refuse at load rather than run a wrong model.
            throw new NotSupportedException($"the CUDA backend does not run {config.Architecture} models yet (per-head query and key norms); run them on the CPU backend (--device cpu)");
        }

        Config = config;
        _options = options;
        _communicator = communicator;
        MaxBatchTokens = options.MaxBatchTokens;
        MaxContext = options.MaxContext > 0 ? options.MaxContext : config.MaxPositions;
        _halfSplit = config.RopeLayout == RopeLayout.HalfSplit;
        _ownsDevice = device is null || ownsDevice;
        _device = device ?? CudaDevice.Open(options.Device);
        _device.MakeCurrent();
        Driver.Check(Driver.cuStreamCreate(out _stream, Driver.StreamNonBlocking));
        CuBlas.Check(CuBlas.cublasCreate(out _blas));
        CuBlas.Check(CuBlas.cublasSetStream(_blas, _stream));
        _workspace = new DeviceBuffer(64L << 20); // set before any capture: cuBLAS must not allocate inside a graph
        CuBlas.Check(CuBlas.cublasSetWorkspace(_blas, _workspace.Pointer, (nuint)_workspace.Bytes));
        var (headDim, gqaGroup) = KernelModule.ShapeFor(config);
        _kernels = new KernelModule(_device, headDim, options.KernelCacheDirectory, gqaGroup, weightFormats);
        _weights = weights(_kernels, _stream);
        _kernels.ProgrammaticLaunch = options.ProgrammaticLaunch && _device.ComputeCapability >= 90;
        long largestCompact = _weights.CompactMatrices().Select(m => (long)m.Rows * m.Columns).DefaultIfEmpty(0).Max();
        _expanded = largestCompact > 0 ? new DeviceBuffer(Math.Min(largestCompact, options.CompactExpandElements) * sizeof(ushort)) : null;

        int t = MaxBatchTokens;
        int rows = options.MaxLogitRows;
        DeviceBuffer Buffer(long count, int elementBytes) => new(count * elementBytes);
        _x = Buffer((long)t * config.HiddenSize, sizeof(float));
        _normed = Buffer((long)t * Math.Max(config.HiddenSize, config.QueryDim), sizeof(ushort));
        _qkv = Buffer((long)t * (config.QueryDim + (2 * config.KvDim)), sizeof(float));
        _attended = Buffer((long)t * config.QueryDim, sizeof(ushort));
        _projected = Buffer((long)t * config.HiddenSize, sizeof(float));
        _gateUp = Buffer((long)t * 2 * config.IntermediateSize, sizeof(float));
        _activated = Buffer((long)t * config.IntermediateSize, sizeof(ushort));
        _finalNormed = Buffer((long)rows * config.HiddenSize, sizeof(ushort));
        _logits = Buffer((long)rows * config.VocabSize, sizeof(float));
        _sampled = Buffer(rows, sizeof(int));
        _argmaxSlices = ArgmaxSlices(config.VocabSize);
        _argmaxScratch = Buffer((2L * rows * _argmaxSlices) + rows, sizeof(int)); // slice values, slice ids, a counter per row
        _argmaxScratch.Fill(0, _stream); // argmax_sliced's counters start at zero and are reset by the kernel
        int headGroups = config.HeadCount / gqaGroup;
        _attentionSplits = new AttentionSplits(_device.MultiprocessorCount, headGroups, t, options.SplitDecodeAttention);
        _attentionPartials = Buffer(Math.Max(1, _attentionSplits.PartialRecords * gqaGroup * (headDim + 2)), sizeof(float)); // values, max, sum a head
        _attentionDone = Buffer(Math.Max(1, _attentionSplits.Counters), sizeof(int));
        _attentionDone.Fill(0, _stream); // paged_attention's counters start at zero and are reset by the kernel
        _sampler = new DeviceSampler(rows);
        _stepArrays = Buffer(StepInts, sizeof(int));
        _hostStep = new PinnedBuffer<int>(StepInts);
        _tokenRows = new int[t];
        _inverseFrequencies = Buffer(config.HeadDim / 2, sizeof(double));
        _inverseFrequencies.Upload<double>(RopeTable.Compute(config, ropeFactors), _stream);
        Driver.Check(Driver.cuStreamSynchronize(_stream));
        _gemv = new GemvChoices(options.TuneMinimumBytes);
        if (communicator is null)
        {
            try
            {
                TuneProducts(); // a tensor-parallel group tunes its ranks together (their steps meet in all-reduces)
            }
            catch
            {
                Dispose();
                throw;
            }
        }
    }

    public ModelConfig Config { get; }

    public int MaxBatchTokens { get; }

    public int MaxContext { get; }

    public int MaxLogitRows => _options.MaxLogitRows;

    public string Device => "cuda";

    public int TensorParallelSize => _communicator?.Size ?? 1;

    public CudaDevice Gpu => _device;

    public KernelModule Kernels => _kernels;

    public CudaWeights Weights => _weights;

    /// <summary>The stream every step runs on; tests use it to poison and read buffers in order with the steps.</summary>
    public nint Stream => _stream;

    /// <summary>Which matrix-vector kernel each product of a small step launches, and what the warm-up trials measured.</summary>
    public GemvChoices GemvChoices => _gemv;

    /// <summary>Decode batch sizes captured as CUDA graphs so far.</summary>
    public int GraphCount => _graphs.Count;

    /// <summary>Blocks a decode step of <paramref name="tokens"/> spreads each token's keys over (<see cref="AttentionSplits"/>).</summary>
    internal int DecodeAttentionSplits(int tokens) => _attentionSplits.For(tokens, decode: true);

    public long KvBlockBytes(int blockSize) => CudaKvCache.BlockBytes(Config.LayerCount, Config.KvDim, blockSize);

    /// <summary>Free device memory now, after the weights, activations and workspace were allocated.</summary>
    public long KvMemoryAvailable => _device.MemoryInfo().Free;

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence)
    {
        _device.MakeCurrent();
        return new CudaKvCache(_device, _stream, Config.LayerCount, Config.KvDim, blockCount, blockSize, maxSequences, maxBlocksPerSequence);
    }

    /// <summary>
    /// Runs one step and copies float32 logits to <paramref name="logits"/>: [SequenceCount x vocab] for the last token
    /// of each sequence, or [TokenCount x vocab] with <paramref name="allPositions"/>.
    /// </summary>
    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        int rows = Run(batch, cache, allPositions);
        long count = (long)rows * Config.VocabSize;
        if (logits.Length < count)
        {
            throw new ArgumentException($"logits holds {logits.Length} floats; this step needs {rows} x {Config.VocabSize}", nameof(logits));
        }

        _logits.Download(logits[..(int)count], _stream);
    }

    /// <summary>
    /// Runs one step and draws each sequence's token on the device: the step's argmax where every row is greedy (part
    /// of a decode step's graph), else sample_rows after it. Only the ids come back.
    /// </summary>
    public bool TryForwardSampled(ForwardBatch batch, IPagedKvCache cache, ReadOnlySpan<DeviceSampling> sampling, Span<int> next)
    {
        int rows = Run(batch, cache, allPositions: false);
        foreach (var row in sampling[..rows])
        {
            if (!row.IsGreedy)
            {
                _sampler.Sample(_kernels, sampling[..rows], _logits.Pointer, Config.VocabSize, _sampled.Pointer, _stream, Profiler);
                break;
            }
        }

        _sampled.Download(next[..rows], _stream);
        return true;
    }

    /// <summary>Runs one step and picks each sequence's next token greedily on the device: only the ids come back.</summary>
    public void ForwardGreedy(ForwardBatch batch, IPagedKvCache cache, Span<int> next)
    {
        int rows = Run(batch, cache, allPositions: false);
        _sampled.Download(next[..rows], _stream);
    }

    /// <summary>A tensor-parallel rank other than 0: runs the step (its collectives included) and returns nothing.</summary>
    internal void ForwardWithoutOutput(ForwardBatch batch, IPagedKvCache cache, bool allPositions)
    {
        Run(batch, cache, allPositions);
        Driver.Check(Driver.cuStreamSynchronize(_stream));
    }

    /// <summary>The device's logits of the last step, [rows x vocab]: what the sampling kernels read.</summary>
    internal ulong LogitsPointer => _logits.Pointer;

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _device.MakeCurrent();
        Driver.cuStreamSynchronize(_stream);
        foreach (nint graph in _graphs.Values)
        {
            Driver.cuGraphExecDestroy(graph);
        }

        foreach (var buffer in new[] { _x, _normed, _qkv, _attended, _projected, _gateUp, _activated, _finalNormed, _logits, _sampled, _argmaxScratch, _attentionPartials, _attentionDone, _stepArrays, _inverseFrequencies, _workspace })
        {
            buffer.Dispose();
        }

        _hostStep.Dispose();
        _expanded?.Dispose();
        _sampler.Dispose();
        _weights.Dispose();
        _kernels.Dispose();
        CuBlas.cublasDestroy(_blas);
        Driver.cuStreamDestroy(_stream);
        if (_ownsDevice)
        {
            _device.Dispose();
        }
    }
}
