using Kiln.Runtime.Backends;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>
/// A tensor-parallel group on the CPU: t ranks, each a <see cref="CpuModelRunner"/> over its weight shard and its
/// share of the KV pool, on its own thread with its own worker threads, joined by a shared-memory all-reduce after
/// attention and after the MLP. Every rank runs every step; rank 0 also computes the logits.
/// </summary>
public sealed class TensorParallelCpuRunner : IModelRunner
{
    private readonly CpuModelRunner[] _ranks;
    private readonly ModelWeights[] _shards;
    private readonly SharedMemoryAllReduce _allReduce;
    private readonly RankGroup _group;
    private readonly RankGroup.RankZeroStep _rankZero;
    private ShardedKvCache<PagedKvCache>? _cache;
    private bool _allPositions;
    private bool _disposed;

    public TensorParallelCpuRunner(LoadedModel model, int ranks, int maxBatchTokens, int maxContext, int threads = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 2);
        WeightSharding.Check(model.Config, ranks);
        Config = model.Config;
        MaxBatchTokens = maxBatchTokens;
        TensorParallelSize = ranks;
        _allReduce = new SharedMemoryAllReduce(ranks);
        var rankConfig = WeightSharding.RankConfig(model.Config, ranks);
        int threadsPerRank = Math.Max(1, (threads > 0 ? threads : Environment.ProcessorCount) / ranks);
        _shards = new ModelWeights[ranks];
        _ranks = new CpuModelRunner[ranks];
        for (int r = 0; r < ranks; r++)
        {
            _shards[r] = WeightSharding.Shard(model.Config, model.Weights, r, ranks);
            _ranks[r] = new CpuModelRunner(rankConfig, _shards[r], maxBatchTokens, maxContext, null, threadsPerRank, new TensorParallelRank(r, _allReduce));
        }

        _rankZero = (batch, logits) => _ranks[0].Forward(batch, _cache!.Shard(0), logits, _allPositions);
        _group = new RankGroup(ranks, "kiln-tp-rank", (rank, batch) => _ranks[rank].Forward(batch, _cache!.Shard(rank), [], _allPositions), _allReduce.Fail);
    }

    public ModelConfig Config { get; }

    public int MaxBatchTokens { get; }

    public int TensorParallelSize { get; }

    /// <summary>Every rank's keys and values together: more than one rank's worth of the model when KV heads are replicated.</summary>
    public long KvBlockBytes(int blockSize) => BlockBytes(Config, TensorParallelSize, blockSize);

    public static long BlockBytes(ModelConfig config, int ranks, int blockSize) =>
        ranks * PagedKvCache.BlockBytes(config.LayerCount, WeightSharding.KvHeadsPerRank(config, ranks) * config.HeadDim, blockSize);

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        new ShardedKvCache<PagedKvCache>([.. _ranks.Select(r => (PagedKvCache)r.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence))]);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        if (_allReduce.HasFailed)
        {
            throw new InvalidOperationException("a rank of this tensor-parallel group failed earlier; the group must be recreated");
        }

        _cache = (ShardedKvCache<PagedKvCache>)cache;
        _allPositions = allPositions;
        _group.Run(batch, logits, _rankZero);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _group.Dispose();
        foreach (var rank in _ranks)
        {
            rank.Dispose();
        }

        foreach (var shard in _shards)
        {
            shard.Dispose();
        }

        _allReduce.Dispose();
    }
}
