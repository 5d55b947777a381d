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
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private readonly CountdownEvent _done;
    private readonly Exception?[] _errors;
    private ShardedKvCache? _cache;
    private int _tokens;
    private int _sequences;
    private int[] _batch = [];
    private bool _allPositions;
    private volatile bool _stopping;

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

        _errors = new Exception?[ranks];
        _done = new CountdownEvent(ranks - 1);
        _start = new SemaphoreSlim[ranks - 1];
        _threads = new Thread[ranks - 1];
        for (int r = 1; r < ranks; r++)
        {
            int rank = r;
            _start[r - 1] = new SemaphoreSlim(0);
            _threads[r - 1] = new Thread(() => RankLoop(rank)) { IsBackground = true, Name = $"kiln-tp-rank-{rank}" };
            _threads[r - 1].Start();
        }
    }

    public ModelConfig Config { get; }

    public int MaxBatchTokens { get; }

    public int TensorParallelSize { get; }

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        new ShardedKvCache([.. _ranks.Select(r => (PagedKvCache)r.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence))]);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        if (_allReduce.HasFailed)
        {
            throw new InvalidOperationException("a rank of this tensor-parallel group failed earlier; the group must be recreated");
        }

        // Ranks 1..t-1 read the batch from a copy: spans cannot cross threads.
        _cache = (ShardedKvCache)cache;
        _tokens = batch.TokenCount;
        _sequences = batch.SequenceCount;
        int needed = (2 * _tokens) + (2 * _sequences);
        if (_batch.Length < needed)
        {
            _batch = new int[Math.Max(needed, (2 * MaxBatchTokens) + 64)];
        }

        batch.TokenIds.CopyTo(_batch);
        batch.Positions.CopyTo(_batch.AsSpan(_tokens));
        batch.SequenceIds.CopyTo(_batch.AsSpan(2 * _tokens));
        batch.QueryLengths.CopyTo(_batch.AsSpan((2 * _tokens) + _sequences));
        _allPositions = allPositions;

        _done.Reset();
        foreach (var start in _start)
        {
            start.Release();
        }

        try
        {
            _ranks[0].Forward(batch, _cache.Shard(0), logits, allPositions);
        }
        catch
        {
            _allReduce.Fail();
            _done.Wait();
            throw;
        }

        _done.Wait();
        foreach (var error in _errors)
        {
            if (error is not null && error is not OperationCanceledException)
            {
                throw new InvalidOperationException($"a tensor-parallel rank failed: {error.Message}", error);
            }
        }
    }

    private void RankLoop(int rank)
    {
        while (true)
        {
            _start[rank - 1].Wait();
            if (_stopping)
            {
                return;
            }

            _errors[rank] = null;
            try
            {
                var ids = _batch.AsSpan(0, _tokens);
                var positions = _batch.AsSpan(_tokens, _tokens);
                var sequences = _batch.AsSpan(2 * _tokens, _sequences);
                var lengths = _batch.AsSpan((2 * _tokens) + _sequences, _sequences);
                _ranks[rank].Forward(new ForwardBatch(ids, positions, sequences, lengths), _cache!.Shard(rank), [], _allPositions);
            }
            catch (Exception e)
            {
                _errors[rank] = e;
                _allReduce.Fail();
            }
            finally
            {
                _done.Signal();
            }
        }
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        foreach (var start in _start)
        {
            start.Release();
        }

        foreach (var thread in _threads)
        {
            thread.Join();
        }

        foreach (var rank in _ranks)
        {
            rank.Dispose();
        }

        foreach (var shard in _shards)
        {
            shard.Dispose();
        }

        _allReduce.Dispose();
        _done.Dispose();
        foreach (var start in _start)
        {
            start.Dispose();
        }
    }
}
