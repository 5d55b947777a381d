using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>One step on the device: the step's arrays, the kernel sequence, and the CUDA graphs that replay it.</summary>
public sealed unsafe partial class CudaModelRunner
{
    private CudaKvCache? _graphCache;
    private bool? _fusedOverride;
    private bool _attentionUnsplit;

    /// <summary>When set, steps run eagerly and every launch is timed (the benchmark's --profile).</summary>
    public KernelProfiler? Profiler { get; set; }

    /// <summary>The step's ints on the device: token ids, positions, slots and block-table rows [MaxBatchTokens each], output rows [MaxLogitRows].</summary>
    private int StepInts => (4 * MaxBatchTokens) + _options.MaxLogitRows;

    /// <summary>A model with seeded random bf16 or Q8 weights made on the device: for benchmarks at sizes no test file has.</summary>
    public static CudaModelRunner CreateRandom(ModelConfig config, CudaRunnerOptions options, ulong seed, WeightFormat format = WeightFormat.Bf16) =>
        new(config, null, options, null, null, [format], (kernels, stream) => CudaWeights.Random(config, kernels, stream, seed, format));

    /// <summary>Validates and stages the step, runs it (from a graph when it is a decode step), and returns its logit rows.</summary>
    private int Run(ForwardBatch batch, IPagedKvCache cache, bool allPositions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cache is not CudaKvCache kv || kv.LayerCount != Config.LayerCount || kv.KvDim != Config.KvDim)
        {
            throw new ArgumentException("the KV cache was not made by a CUDA runner for this model", nameof(cache));
        }

        int tokens = ForwardBatch.Validate(batch, Config, MaxBatchTokens, MaxContext, _tokenRows);
        int rows = allPositions ? tokens : batch.SequenceCount;
        if (rows > _options.MaxLogitRows)
        {
            throw new ArgumentException($"this step wants {rows} rows of logits; the runner was sized for {_options.MaxLogitRows}", nameof(batch));
        }

        int t = MaxBatchTokens;
        var host = _hostStep.Span;
        batch.TokenIds.CopyTo(host);
        batch.Positions.CopyTo(host[t..]);
        for (int i = 0; i < tokens; i++)
        {
            host[(2 * t) + i] = kv.Slot(_tokenRows[i], batch.Positions[i]);
            host[(3 * t) + i] = _tokenRows[i];
        }

        int row = 0;
        int offset = 0;
        for (int s = 0; s < batch.SequenceCount; s++)
        {
            int length = batch.QueryLengths[s];
            for (int i = allPositions ? 0 : length - 1; i < length; i++)
            {
                host[(4 * t) + row++] = offset + i;
            }

            offset += length;
        }

        _device.MakeCurrent();
        Driver.Check(Driver.cuMemcpyHtoDAsync(_stepArrays.Pointer, _hostStep.Pointer, (nuint)(StepInts * sizeof(int)), _stream));
        bool decode = !allPositions && tokens == batch.SequenceCount;
        if (decode && _options.CudaGraphs && tokens <= _options.MaxGraphBatch && Profiler is null)
        {
            LaunchGraph(tokens, kv);
        }
        else
        {
            RunStep(tokens, rows, kv, decode);
        }

        return rows;
    }

    private void LaunchGraph(int tokens, CudaKvCache kv)
    {
        if (!ReferenceEquals(kv, _graphCache))
        {
            DestroyGraphs(); // a graph holds the pool's addresses
            _graphCache = kv;
        }

        if (!_graphs.TryGetValue(tokens, out nint exec))
        {
            Driver.Check(Driver.cuStreamBeginCapture(_stream, Driver.CaptureModeThreadLocal));
            nint graph;
            try
            {
                RunStep(tokens, tokens, kv, decode: true);
            }
            catch
            {
                Driver.cuStreamEndCapture(_stream, out graph);
                if (graph != 0)
                {
                    Driver.cuGraphDestroy(graph);
                }

                throw;
            }

            Driver.Check(Driver.cuStreamEndCapture(_stream, out graph));
            try
            {
                Driver.Check(Driver.cuGraphInstantiateWithFlags(out exec, graph, 0));
            }
            finally
            {
                Driver.cuGraphDestroy(graph);
            }

            _graphs[tokens] = exec;
        }

        Driver.Check(Driver.cuGraphLaunch(exec, _stream));
    }

    /// <summary>Turns programmatic dependent launch on or off (for the benchmark's comparison); captured graphs are dropped.</summary>
    internal void SetProgrammaticLaunch(bool enabled)
    {
        FinishAndDropGraphs();
        _kernels.ProgrammaticLaunch = enabled && _device.ComputeCapability >= 90;
    }

    /// <summary>
    /// Turns the fused decode layers on or off (for the benchmark's comparison); captured graphs are dropped. A lone
    /// runner then runs the warm-up trials again, for the products the other layers launch.
    /// </summary>
    internal void SetFusedSmallBatch(bool enabled)
    {
        FinishAndDropGraphs();
        _fusedOverride = enabled;
        if (_communicator is null)
        {
            TuneProducts();
        }
    }

    /// <summary>
    /// Turns the split of decode attention over blocks off or back on (for the benchmark's comparison; on only where the
    /// options enabled it); captured graphs are dropped.
    /// </summary>
    internal void SetSplitDecodeAttention(bool enabled)
    {
        FinishAndDropGraphs();
        _attentionUnsplit = !enabled;
    }

    /// <summary>Before a setting changes what a step launches: the stream finished, and the graphs captured under the old setting gone.</summary>
    private void FinishAndDropGraphs()
    {
        _device.MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(_stream));
        DestroyGraphs();
    }

    private void DestroyGraphs()
    {
        foreach (nint graph in _graphs.Values)
        {
            Driver.cuGraphExecDestroy(graph);
        }

        _graphs.Clear();
    }

    /// <summary>
    /// The kernel sequence of one step over <paramref name="tokens"/> tokens, producing <paramref name="rows"/> rows of
    /// logits; <paramref name="decode"/> when each token is its sequence's only new one (attention may then load the
    /// earlier keys before the QKV product has finished).
    /// </summary>
    private void RunStep(int tokens, int rows, CudaKvCache kv, bool decode)
    {
        var c = Config;
        int t = MaxBatchTokens;
        ulong ids = _stepArrays.Pointer;
        ulong positions = ids + (ulong)(4 * t);
        ulong slots = ids + (ulong)(8 * t);
        ulong tokenRows = ids + (ulong)(12 * t);
        ulong outputRows = ids + (ulong)(16 * t);
        ulong eps = KernelModule.Float((float)c.RmsNormEps);
        ulong hidden = KernelModule.Int(c.HiddenSize);
        int qkvRows = c.QueryDim + (2 * c.KvDim);

        var table = _weights.Embedding;
        if (table.Format == WeightFormat.Bf16)
        {
            Launch("embed_tokens", (uint)tokens, 1, 256, [_x.Pointer, table.Data.Pointer, ids, hidden]);
        }
        else
        {
            Launch("embed_tokens_compact", (uint)tokens, 1, 256, [_x.Pointer, table.Data.Pointer, table.ScalesPointer, ids, hidden, IsQ8(table)]);
        }

        bool fused = FusesLayers(tokens);
        int splits = _attentionUnsplit ? 1 : _attentionSplits.For(tokens, decode);
        for (int layer = 0; layer < c.LayerCount; layer++)
        {
            var w = _weights.Layers[layer];
            if (fused)
            {
                // RMSNorm, the QKV product, RoPE and the cache writes in one kernel (gemv.cu, GEMV_ROPE).
                var qkv = w.QueryKeyValue;
                Launch(_gemv.Fused("gemv_norm_rope", qkv.Format, qkvRows, c.HiddenSize, tokens), (uint)(((qkvRows / 2) + 7) / 8), 1, 256,
                    [_qkv.Pointer, qkv.Data.Pointer, _x.Pointer, w.QueryKeyValueBias?.Pointer ?? 0, w.AttentionNorm.Pointer, eps,
                     KernelModule.Int(qkvRows), hidden, KernelModule.Int(tokens), qkv.ScalesPointer,
                     kv.Keys(layer), kv.Values(layer), positions, slots, _inverseFrequencies.Pointer,
                     KernelModule.Int(c.HeadCount), KernelModule.Int(c.KvHeadCount), KernelModule.Int(_halfSplit ? 1 : 0)],
                    (qkvRows, c.HiddenSize));
            }
            else
            {
                ulong residual = layer == 0 ? 0 : _projected.Pointer; // the previous layer's MLP output joins the stream here
                Launch("add_rmsnorm", (uint)tokens, 1, 256, [_x.Pointer, residual, w.AttentionNorm.Pointer, _normed.Pointer, 0, hidden, eps]);
                Linear(_qkv, w.QueryKeyValue, _normed, w.QueryKeyValueBias, qkvRows, c.HiddenSize, tokens);
                Launch("rope_write_kv", (uint)tokens, 1, 128,
                    [_qkv.Pointer, kv.Keys(layer), kv.Values(layer), positions, slots, _inverseFrequencies.Pointer,
                     KernelModule.Int(c.HeadCount), KernelModule.Int(c.KvHeadCount), KernelModule.Int(_halfSplit ? 1 : 0)]);
            }

            Launch("paged_attention", (uint)tokens, (uint)(c.HeadCount / _kernels.GqaGroup * splits), 256,
                [_attended.Pointer, _qkv.Pointer, kv.Keys(layer), kv.Values(layer), kv.Tables, KernelModule.Int(kv.MaxBlocksPerSequence),
                 tokenRows, positions, KernelModule.Int(c.HeadCount), KernelModule.Int(c.KvHeadCount), KernelModule.Int(kv.BlockSize),
                 KernelModule.Float(1f / MathF.Sqrt(c.HeadDim)), KernelModule.Int(decode ? 1 : 0),
                 KernelModule.Int(splits), _attentionPartials.Pointer, _attentionDone.Pointer]);
            if (fused)
            {
                IntoStream(w.Output, _attended, c.QueryDim, tokens);
                FusedLinear("gemv_norm_swiglu", _activated, w.GateUp, _x, null, w.FeedForwardNorm, c.IntermediateSize, c.HiddenSize, tokens);
                IntoStream(w.Down, _activated, c.IntermediateSize, tokens);
                continue;
            }

            Linear(_projected, w.Output, _attended, null, c.HiddenSize, c.QueryDim, tokens);
            AllReduce(_projected, (long)tokens * c.HiddenSize);
            Launch("add_rmsnorm", (uint)tokens, 1, 256, [_x.Pointer, _projected.Pointer, w.FeedForwardNorm.Pointer, _normed.Pointer, 0, hidden, eps]);
            Linear(_gateUp, w.GateUp, _normed, null, 2 * c.IntermediateSize, c.HiddenSize, tokens);
            Launch("swiglu", Grid((long)tokens * c.IntermediateSize), 1, 256, [_activated.Pointer, _gateUp.Pointer, KernelModule.Int(c.IntermediateSize), KernelModule.Int(tokens)]);
            Linear(_projected, w.Down, _activated, null, c.HiddenSize, c.IntermediateSize, tokens);
            AllReduce(_projected, (long)tokens * c.HiddenSize);
        }

        // Fused layers left nothing to add: their down products went into the stream already.
        ulong lastOutput = fused ? 0 : _projected.Pointer;
        Launch("add_rmsnorm", (uint)rows, 1, 256, [_x.Pointer, lastOutput, _weights.FinalNorm.Pointer, _finalNormed.Pointer, outputRows, hidden, eps]);
        Linear(_logits, _weights.Classifier, _finalNormed, null, c.VocabSize, c.HiddenSize, rows);
        // argmax_sliced's scratch: every row's slice values, then slice ids, then one counter a row.
        ulong perArray = (ulong)_options.MaxLogitRows * (ulong)_argmaxSlices * sizeof(float);
        ulong sliceValues = _argmaxScratch.Pointer, sliceIds = sliceValues + perArray, done = sliceIds + perArray;
        Launch("argmax_sliced", (uint)rows, (uint)_argmaxSlices, 256,
            [_sampled.Pointer, _logits.Pointer, KernelModule.Int(c.VocabSize), sliceValues, sliceIds, done]);
    }

    /// <summary>Blocks argmax_sliced gives a row: one per 4,096 logits, up to 32 (a 128k vocabulary is read by 31 SMs at once).</summary>
    internal static int ArgmaxSlices(int vocab) => Math.Clamp(vocab / 4096, 1, 32);

    /// <summary>Whether a step of <paramref name="tokens"/> runs the fused five-kernel layers (<see cref="CudaRunnerOptions.FusedSmallBatch"/>).</summary>
    private bool FusesLayers(int tokens) =>
        (_fusedOverride ?? _options.FusedSmallBatch) && tokens <= GemvMaxTokens &&
        Config.HiddenSize % 8 == 0 && Config.QueryDim % 8 == 0 && Config.IntermediateSize % 8 == 0;

    /// <summary>
    /// A fused layer's output or down product joins the residual stream x. On one GPU it is added in place. Under
    /// tensor parallelism each rank holds a partial sum: rank 0 adds its part to x, the others store theirs over
    /// their copy of x, and the all-reduce leaves x plus every part on every rank.
    /// </summary>
    private void IntoStream(DeviceMatrix weight, DeviceBuffer input, int inFeatures, int tokens)
    {
        if (_communicator is null || _communicator.Rank == 0)
        {
            FusedLinear("gemv_add", _x, weight, input, null, null, Config.HiddenSize, inFeatures, tokens);
        }
        else
        {
            Linear(_x, weight, input, null, Config.HiddenSize, inFeatures, tokens);
        }

        AllReduce(_x, (long)tokens * Config.HiddenSize);
    }

    /// <summary>
    /// One of gemv.cu's fused products: <paramref name="norm"/> given, x is the float32 residual stream, normalised
    /// inside the product; gemv_add adds into y; gemv_norm_swiglu writes the bf16 activation, one output per gate/up row pair.
    /// </summary>
    private void FusedLinear(string kernel, DeviceBuffer y, DeviceMatrix weight, DeviceBuffer x, DeviceBuffer? bias, DeviceBuffer? norm, int outputs, int inFeatures, int tokens)
    {
        int warps = outputs; // one output a warp: a row, or a gate/up row pair
        (int Rows, int Columns) shape = (kernel == "gemv_norm_swiglu" ? 2 * outputs : outputs, inFeatures);
        ReadOnlySpan<ulong> arguments =
        [
            y.Pointer, weight.Data.Pointer, x.Pointer, bias?.Pointer ?? 0, norm?.Pointer ?? 0, KernelModule.Float((float)Config.RmsNormEps),
            KernelModule.Int(outputs), KernelModule.Int(inFeatures), KernelModule.Int(tokens), weight.ScalesPointer,
        ];
        bool compact = weight.Format != WeightFormat.Bf16;
        Launch(_gemv.Fused(kernel, weight.Format, shape.Rows, shape.Columns, tokens), (uint)((warps + 7) / 8), 1, 256, compact ? arguments : arguments[..9], shape);
    }

    /// <summary>y [tokens x out] float32 = x [tokens x in] bf16 times the weight [out x in], transposed, plus bias.</summary>
    private void Linear(DeviceBuffer y, DeviceMatrix weight, DeviceBuffer x, DeviceBuffer? bias, int outFeatures, int inFeatures, int tokens)
    {
        ulong biasPointer = bias?.Pointer ?? 0;
        if (tokens <= GemvMaxTokens && inFeatures % 8 == 0)
        {
            var gemv = _gemv.Plain(weight.Format, outFeatures, inFeatures, tokens);
            if (weight.Format == WeightFormat.Bf16)
            {
                Launch(GemvVariant.ForTokens(gemv.Kernel, tokens), gemv.Blocks(outFeatures), 1, (uint)gemv.Threads,
                    [y.Pointer, weight.Data.Pointer, x.Pointer, biasPointer, KernelModule.Int(outFeatures), KernelModule.Int(inFeatures), KernelModule.Int(tokens)],
                    (outFeatures, inFeatures));
            }
            else
            {
                Launch(GemvVariant.ForTokens(gemv.CompactKernel(weight.Format), tokens), gemv.Blocks(outFeatures), 1, (uint)gemv.Threads,
                    [y.Pointer, weight.Data.Pointer, x.Pointer, biasPointer, 0, 0, KernelModule.Int(outFeatures), KernelModule.Int(inFeatures), KernelModule.Int(tokens), weight.ScalesPointer],
                    (outFeatures, inFeatures));
            }

            return;
        }

        if (weight.Format == WeightFormat.Bf16)
        {
            Gemm(y.Pointer, weight.Data.Pointer, x, outFeatures, outFeatures, inFeatures, tokens);
        }
        else
        {
            // An f16 or Q8 matrix is expanded to bf16 a slice of rows at a time; each slice's product fills its rows of y.
            int sliceRows = (int)Math.Clamp(_options.CompactExpandElements / inFeatures, 1, outFeatures);
            for (int first = 0; first < outFeatures; first += sliceRows)
            {
                int count = Math.Min(sliceRows, outFeatures - first);
                long elements = (long)count * inFeatures;
                Launch("expand_to_bf16", Grid(elements), 1, 256,
                    [_expanded!.Pointer, weight.Data.Pointer, weight.ScalesPointer, (ulong)((long)first * inFeatures), (ulong)elements, IsQ8(weight)]);
                Gemm(y.Pointer + ((ulong)first * sizeof(float)), _expanded.Pointer, x, count, outFeatures, inFeatures, tokens);
            }
        }

        if (bias is not null)
        {
            Launch("add_bias", Grid((long)tokens * outFeatures), 1, 256, [y.Pointer, biasPointer, KernelModule.Int(outFeatures), KernelModule.Int(tokens)]);
        }
    }

    /// <summary>
    /// y [tokens x stride] float32, rows [0, rows) of each token = x [tokens x in] bf16 times the bf16 weight [rows x in],
    /// transposed. Row-major W is column-major W^T, so y^T = op(W^T)^T x^T is GemmEx(T, N) with m = rows, n = tokens.
    /// </summary>
    private void Gemm(ulong y, ulong weight, DeviceBuffer x, int rows, int stride, int inFeatures, int tokens)
    {
        float alpha = 1f;
        float beta = 0f;
        Profiler?.Begin(_stream);
        CuBlas.Check(CuBlas.cublasGemmEx(
            _blas, CuBlas.OpT, CuBlas.OpN, rows, tokens, inFeatures, &alpha,
            weight, CuBlas.DataBF16, inFeatures, x.Pointer, CuBlas.DataBF16, inFeatures, &beta,
            y, CuBlas.DataF32, stride, CuBlas.Compute32F, CuBlas.GemmDefault));
        Profiler?.End($"cublasGemmEx {rows}x{inFeatures}", _stream);
    }

    private static ulong IsQ8(DeviceMatrix matrix) => matrix.Format == WeightFormat.Q8 ? 1UL : 0UL;

    /// <summary>The row-parallel products leave partial sums on each rank; NCCL adds them up.</summary>
    private void AllReduce(DeviceBuffer buffer, long count) => _communicator?.AllReduceSum(buffer.Pointer, count, _stream);

    /// <summary>Launches a kernel; <paramref name="shape"/> (a product's rows x columns) only names it for the profiler.</summary>
    private void Launch(string kernel, uint gridX, uint gridY, uint block, ReadOnlySpan<ulong> arguments, (int Rows, int Columns) shape = default)
    {
        if (Profiler is null)
        {
            _kernels.Launch(kernel, (gridX, gridY), block, _stream, arguments);
            return;
        }

        Profiler.Begin(_stream);
        _kernels.Launch(kernel, (gridX, gridY), block, _stream, arguments);
        Profiler.End(shape == default ? kernel : $"{kernel} {shape.Rows}x{shape.Columns}", _stream);
    }

    /// <summary>Blocks of 256 for an elementwise kernel over <paramref name="count"/> items; the kernels loop over the rest.</summary>
    private static uint Grid(long count) => (uint)Math.Clamp((count + 255) / 256, 1, 65535);
}
