using System.Numerics.Tensors;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// Causal attention of every new token over its own sequence's keys and values in the KV cache (positions 0..p),
/// one work item per (token, query head). Grouped-query attention maps query head h to KV head h / (heads / kvHeads).
/// </summary>
internal sealed unsafe class AttentionKernel : IParallelWork
{
    private readonly ModelConfig _config;
    private readonly float[][] _scores;
    private readonly float _scale;
    private IKvCache? _cache;
    private int _layer;
    private float* _queries;
    private float* _output;
    private int[]? _tokenSequence;
    private int[]? _positions;

    public AttentionKernel(ModelConfig config, int workers, int maxContext)
    {
        _config = config;
        _scale = (float)(1.0 / Math.Sqrt(config.HeadDim));
        _scores = new float[workers][];
        for (int i = 0; i < workers; i++)
        {
            _scores[i] = new float[maxContext];
        }
    }

    public int MaxContext => _scores[0].Length;

    /// <summary>queries and output are [tokens x QueryDim]; tokenSequence and positions give each token's sequence and position.</summary>
    public void Run(WorkerPool pool, IKvCache cache, int layer, float* queries, float* output, int[] tokenSequence, int[] positions, int tokens)
    {
        _cache = cache;
        _layer = layer;
        _queries = queries;
        _output = output;
        _tokenSequence = tokenSequence;
        _positions = positions;
        pool.Run(this, tokens * _config.HeadCount);
        _cache = null;
    }

    public void Execute(int item, int worker)
    {
        int headDim = _config.HeadDim;
        int token = item / _config.HeadCount;
        int head = item % _config.HeadCount;
        int kvOffset = head / (_config.HeadCount / _config.KvHeadCount) * headDim;
        int sequence = _tokenSequence![token];
        int length = _positions![token] + 1;
        var cache = _cache!;

        var q = new ReadOnlySpan<float>(_queries + ((long)token * _config.QueryDim) + (head * headDim), headDim);
        var scores = _scores[worker].AsSpan(0, length);
        for (int j = 0; j < length; j++)
        {
            scores[j] = TensorPrimitives.Dot(q, cache.Key(_layer, sequence, j).Slice(kvOffset, headDim)) * _scale;
        }

        // Softmax with the maximum subtracted first, so long contexts cannot overflow exp.
        TensorPrimitives.Subtract(scores, TensorPrimitives.Max(scores), scores);
        TensorPrimitives.Exp(scores, scores);
        TensorPrimitives.Divide(scores, TensorPrimitives.Sum(scores), scores);

        var output = new Span<float>(_output + ((long)token * _config.QueryDim) + (head * headDim), headDim);
        output.Clear();
        for (int j = 0; j < length; j++)
        {
            // output += p_j * v_j
            TensorPrimitives.MultiplyAdd(cache.Value(_layer, sequence, j).Slice(kvOffset, headDim), scores[j], output, output);
        }
    }
}
