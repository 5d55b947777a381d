using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Cpu.TensorParallel;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// Tensor parallelism over GPUs: rank r runs on GPU r with the Megatron-style shard the CPU group uses
/// (<see cref="WeightSharding"/>: column-parallel Q/K/V/gate/up, row-parallel O/down), its share of the KV heads,
/// and an NCCL all-reduce after attention and after the MLP. Each rank is driven by its own thread because every
/// rank must enqueue its collective; rank 0 runs on the caller's thread and returns the logits.
/// </summary>
public sealed class TensorParallelCudaRunner : IModelRunner
{
    private readonly CudaModelRunner[] _ranks;
    private readonly NcclCommunicator[] _communicators;
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private readonly CountdownEvent _done;
    private readonly Exception?[] _errors;
    private int[] _batch = [];
    private int _tokens;
    private int _sequences;
    private bool _allPositions;
    private ShardedCudaKvCache? _cache;
    private volatile bool _stopping;

    public TensorParallelCudaRunner(LoadedModel model, int ranks, CudaRunnerOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 2);
        WeightSharding.Check(model.Config, ranks);
        Config = model.Config;
        var rankConfig = WeightSharding.RankConfig(model.Config, ranks);
        _communicators = NcclCommunicator.CreateGroup([.. Enumerable.Range(0, ranks)]);
        _ranks = new CudaModelRunner[ranks];
        for (int r = 0; r < ranks; r++)
        {
            using var shard = WeightSharding.Shard(model.Config, model.Weights, r, ranks); // host copies end with the upload
            var device = CudaDevice.Open(r);
            _ranks[r] = new CudaModelRunner(rankConfig, model.Weights.RopeFactors, options with { Device = r }, device, _communicators[r], (_, stream) => CudaWeights.Upload(rankConfig, shard, stream), ownsDevice: true);
        }

        _errors = new Exception?[ranks];
        _done = new CountdownEvent(ranks - 1);
        _start = new SemaphoreSlim[ranks - 1];
        _threads = new Thread[ranks - 1];
        for (int r = 1; r < ranks; r++)
        {
            int rank = r;
            _start[r - 1] = new SemaphoreSlim(0);
            _threads[r - 1] = new Thread(() => RankLoop(rank)) { IsBackground = true, Name = $"kiln-cuda-rank-{rank}" };
            _threads[r - 1].Start();
        }
    }

    public ModelConfig Config { get; }

    public int MaxBatchTokens => _ranks[0].MaxBatchTokens;

    public string Device => "cuda";

    public int TensorParallelSize => _ranks.Length;

    /// <summary>Per GPU: each rank holds 1/t of the KV heads, so a block costs each GPU 1/t of the full size.</summary>
    public long KvBlockBytes(int blockSize) => _ranks[0].KvBlockBytes(blockSize);

    /// <summary>The least free memory of the group's GPUs: every rank allocates the same number of blocks.</summary>
    public long KvMemoryAvailable => _ranks.Min(r => r.KvMemoryAvailable);

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        new ShardedCudaKvCache([.. _ranks.Select(r => (CudaKvCache)r.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence))]);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        _cache = (ShardedCudaKvCache)cache;
        _tokens = batch.TokenCount;
        _sequences = batch.SequenceCount;
        int needed = (2 * _tokens) + (2 * _sequences);
        if (_batch.Length < needed)
        {
            _batch = new int[Math.Max(needed, (2 * MaxBatchTokens) + 64)];
        }

        // The other ranks read the batch from this copy: spans cannot cross threads.
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

        Exception? first = null;
        try
        {
            _ranks[0].Forward(batch, _cache.Shard(0), logits, allPositions);
        }
        catch (Exception e)
        {
            first = e;
        }

        _done.Wait();
        first ??= _errors.FirstOrDefault(e => e is not null);
        if (first is not null)
        {
            throw new InvalidOperationException($"a tensor-parallel rank failed: {first.Message}", first);
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
                _ranks[rank].ForwardWithoutOutput(new ForwardBatch(ids, positions, sequences, lengths), _cache!.Shard(rank), _allPositions);
            }
            catch (Exception e)
            {
                _errors[rank] = e;
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

        foreach (var communicator in _communicators)
        {
            communicator.Dispose();
        }

        _done.Dispose();
        foreach (var start in _start)
        {
            start.Dispose();
        }
    }
}

/// <summary>A tensor-parallel group's KV pool: one <see cref="CudaKvCache"/> per GPU, each with that rank's KV heads, under the same block ids.</summary>
public sealed class ShardedCudaKvCache(CudaKvCache[] shards) : IPagedKvCache
{
    public CudaKvCache Shard(int rank) => shards[rank];

    public int BlockCount => shards[0].BlockCount;

    public int BlockSize => shards[0].BlockSize;

    public void Bind(ReadOnlySpan<int> blockTables, int stride, int rows)
    {
        foreach (var shard in shards)
        {
            shard.Bind(blockTables, stride, rows);
        }
    }

    public void CopyBlock(int source, int destination)
    {
        foreach (var shard in shards)
        {
            shard.CopyBlock(source, destination);
        }
    }

    public void Dispose()
    {
        foreach (var shard in shards)
        {
            shard.Dispose();
        }
    }
}
