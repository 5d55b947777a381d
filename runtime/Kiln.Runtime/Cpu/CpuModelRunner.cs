using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu.TensorParallel;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// The CPU forward pass of a Llama-family decoder: the embedded default backend and the numerical reference for every
/// other backend. One <see cref="Forward"/> call runs a whole step (many sequences, prefill chunks and decode tokens
/// mixed) with each linear layer as one matrix product over all the step's tokens. Activations live in buffers sized
/// once for <see cref="MaxBatchTokens"/>, so a steady-state step allocates nothing.
/// </summary>
public sealed unsafe class CpuModelRunner : IModelRunner
{
    private readonly ModelConfig _config;
    private readonly ModelWeights _weights;
    private readonly WorkerPool _pool;
    private readonly bool _ownsPool;
    private readonly RopeTable _rope;
    private readonly MatMulKernel _matMul;
    private readonly AttentionKernel _attention;
    private readonly NativeBuffer _x;
    private readonly NativeBuffer _normed;
    private readonly NativeBuffer _q;
    private readonly NativeBuffer _k;
    private readonly NativeBuffer _v;
    private readonly NativeBuffer _attended;
    private readonly NativeBuffer _gate;
    private readonly NativeBuffer _up;
    private readonly int[] _tokenSequence;
    private readonly int[] _positions;
    private readonly float[] _cos;
    private readonly float[] _sin;
    private readonly TensorParallelRank? _rank;

    public CpuModelRunner(LoadedModel model, int maxBatchTokens = 512, int maxContext = 0, WorkerPool? pool = null, int threads = 0)
        : this(model.Config, model.Weights, maxBatchTokens, maxContext, pool, threads, null)
    {
    }

    /// <summary>One rank of a tensor-parallel group: <paramref name="config"/> and <paramref name="weights"/> are the rank's shard.</summary>
    internal CpuModelRunner(ModelConfig config, ModelWeights weights, int maxBatchTokens, int maxContext, WorkerPool? pool, int threads, TensorParallelRank? rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchTokens);
        _config = config;
        _weights = weights;
        _rank = rank;
        MaxBatchTokens = maxBatchTokens;
        MaxContext = maxContext > 0 ? maxContext : _config.MaxPositions;
        _ownsPool = pool is null;
        _pool = pool ?? new WorkerPool(threads > 0 ? threads : Environment.ProcessorCount);
        _rope = new RopeTable(_config, _weights.RopeFactors);
        int widest = Math.Max(Math.Max(_config.HiddenSize, _config.IntermediateSize), _config.QueryDim);
        _matMul = new MatMulKernel(_pool.WorkerCount, widest);
        _attention = new AttentionKernel(_config, _pool.WorkerCount, MaxContext);
        NativeBuffer Floats(int perToken) => new((long)maxBatchTokens * perToken * sizeof(float));
        _x = Floats(_config.HiddenSize);
        _normed = Floats(_config.HiddenSize);
        _q = Floats(_config.QueryDim);
        _k = Floats(_config.KvDim);
        _v = Floats(_config.KvDim);
        _attended = Floats(_config.QueryDim);
        _gate = Floats(_config.IntermediateSize);
        _up = Floats(_config.IntermediateSize);
        _tokenSequence = new int[maxBatchTokens];
        _positions = new int[maxBatchTokens];
        _cos = new float[maxBatchTokens * (_config.HeadDim / 2)];
        _sin = new float[_cos.Length];
    }

    public ModelConfig Config => _config;

    public int MaxBatchTokens { get; }

    public int MaxContext { get; }

    public int TensorParallelSize => 1;

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        new PagedKvCache(_config.LayerCount, _config.KvDim, blockCount, blockSize, maxSequences, maxBlocksPerSequence);

    void IModelRunner.Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions) =>
        Forward(batch, (PagedKvCache)cache, logits, allPositions);

    /// <summary>
    /// Runs one step. Writes the new tokens' keys and values into <paramref name="cache"/> and float32 logits into
    /// <paramref name="logits"/>: [SequenceCount x vocab] for the last token of each sequence, or, with
    /// <paramref name="allPositions"/>, [TokenCount x vocab] for every token.
    /// </summary>
    public void Forward(ForwardBatch batch, IKvCache cache, Span<float> logits, bool allPositions = false)
    {
        int tokens = Validate(batch, cache);
        int outputRows = allPositions ? tokens : batch.SequenceCount;
        if (_rank is not { Rank: > 0 } && logits.Length < (long)outputRows * _config.VocabSize)
        {
            throw new ArgumentException($"logits holds {logits.Length} floats; this step needs {outputRows} x {_config.VocabSize}", nameof(logits));
        }

        int h = _config.HiddenSize;
        int half = _config.HeadDim / 2;
        for (int t = 0; t < tokens; t++)
        {
            _weights.Embedding.ReadRow(batch.TokenIds[t], _x.AsFloats((long)t * h, h));
            _rope.Angles(_positions[t], _cos.AsSpan(t * half, half), _sin.AsSpan(t * half, half));
        }

        for (int layer = 0; layer < _config.LayerCount; layer++)
        {
            RunLayer(layer, _weights.Layers[layer], cache, tokens);
        }

        if (_rank is { Rank: > 0 })
        {
            return; // every rank holds the full hidden state after the last all-reduce; rank 0 computes the logits
        }

        // Only the rows whose logits are wanted go through the final norm and the classifier.
        int row = 0;
        int offset = 0;
        for (int s = 0; s < batch.SequenceCount; s++)
        {
            int length = batch.QueryLengths[s];
            int first = allPositions ? offset : offset + length - 1;
            for (int t = first; t < offset + length; t++, row++)
            {
                Activations.RmsNorm(_x.AsFloats((long)t * h, h), _weights.FinalNorm, _config.RmsNormEps, _normed.AsFloats((long)row * h, h));
            }

            offset += length;
        }

        fixed (float* output = logits)
        {
            _matMul.Run(_pool, _weights.Classifier, _normed.Floats, output, outputRows);
        }
    }

    /// <summary>RMSNorm over each head of a [tokens x heads x HeadDim] block, in place (Qwen3's q_norm and k_norm).</summary>
    private void NormaliseHeads(Span<float> heads, float[] weight)
    {
        int d = _config.HeadDim;
        for (int start = 0; start < heads.Length; start += d)
        {
            var head = heads.Slice(start, d);
            Activations.RmsNorm(head, weight, _config.RmsNormEps, head);
        }
    }

    private void RunLayer(int layer, LayerWeights w, IKvCache cache, int tokens)
    {
        var c = _config;
        int h = c.HiddenSize;
        int half = c.HeadDim / 2;
        for (int t = 0; t < tokens; t++)
        {
            Activations.RmsNorm(_x.AsFloats((long)t * h, h), w.AttentionNorm, c.RmsNormEps, _normed.AsFloats((long)t * h, h));
        }

        _matMul.Run(_pool, w.Query, _normed.Floats, _q.Floats, tokens, w.QueryBias);
        _matMul.Run(_pool, w.Key, _normed.Floats, _k.Floats, tokens, w.KeyBias);
        _matMul.Run(_pool, w.Value, _normed.Floats, _v.Floats, tokens, w.ValueBias);
        if (w.QueryNorm is { } queryNorm && w.KeyNorm is { } keyNorm)
        {
            NormaliseHeads(_q.AsFloats(0, tokens * c.QueryDim), queryNorm);
            NormaliseHeads(_k.AsFloats(0, tokens * c.KvDim), keyNorm);
        }

        for (int t = 0; t < tokens; t++)
        {
            var cos = _cos.AsSpan(t * half, half);
            var sin = _sin.AsSpan(t * half, half);
            _rope.Rotate(_q.AsFloats((long)t * c.QueryDim, c.QueryDim), cos, sin);
            var key = _k.AsFloats((long)t * c.KvDim, c.KvDim);
            _rope.Rotate(key, cos, sin);
            key.CopyTo(cache.Key(layer, _tokenSequence[t], _positions[t]));
            _v.AsFloats((long)t * c.KvDim, c.KvDim).CopyTo(cache.Value(layer, _tokenSequence[t], _positions[t]));
        }

        _attention.Run(_pool, cache, layer, _q.Floats, _attended.Floats, _tokenSequence, _positions, tokens);
        _matMul.Run(_pool, w.Output, _attended.Floats, _normed.Floats, tokens);
        _rank?.AllReduce.Sum(_rank.Rank, _normed.Floats, tokens * h); // row-parallel: each rank holds a partial sum
        AddInto(_x, _normed, tokens * h);

        for (int t = 0; t < tokens; t++)
        {
            Activations.RmsNorm(_x.AsFloats((long)t * h, h), w.FeedForwardNorm, c.RmsNormEps, _normed.AsFloats((long)t * h, h));
        }

        _matMul.Run(_pool, w.Gate, _normed.Floats, _gate.Floats, tokens);
        _matMul.Run(_pool, w.Up, _normed.Floats, _up.Floats, tokens);
        int inter = c.IntermediateSize;
        for (int t = 0; t < tokens; t++)
        {
            Activations.SwiGlu(_gate.AsFloats((long)t * inter, inter), _up.AsFloats((long)t * inter, inter));
        }

        _matMul.Run(_pool, w.Down, _gate.Floats, _normed.Floats, tokens);
        _rank?.AllReduce.Sum(_rank.Rank, _normed.Floats, tokens * h);
        AddInto(_x, _normed, tokens * h);
    }

    private static void AddInto(NativeBuffer target, NativeBuffer addend, int count)
    {
        var x = new Span<float>(target.Floats, count);
        System.Numerics.Tensors.TensorPrimitives.Add(x, new ReadOnlySpan<float>(addend.Floats, count), x);
    }

    /// <summary>Checks the batch and fills the per-token sequence slots and positions; returns the token count.</summary>
    private int Validate(ForwardBatch batch, IKvCache cache)
    {
        if (cache.LayerCount != _config.LayerCount || cache.KvDim != _config.KvDim)
        {
            throw new ArgumentException("the KV cache was made for a different model", nameof(cache));
        }

        int tokens = ForwardBatch.Validate(batch, _config, MaxBatchTokens, MaxContext, _tokenSequence);
        batch.Positions.CopyTo(_positions);
        return tokens;
    }

    public void Dispose()
    {
        foreach (var buffer in new[] { _x, _normed, _q, _k, _v, _attended, _gate, _up })
        {
            buffer.Dispose();
        }

        if (_ownsPool)
        {
            _pool.Dispose();
        }
    }
}
