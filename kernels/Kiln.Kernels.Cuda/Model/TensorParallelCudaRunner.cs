using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu.TensorParallel;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// Tensor parallelism over GPUs: rank r runs on GPU r with the Megatron-style shard the CPU group uses
/// (<see cref="WeightSharding"/>: column-parallel Q/K/V/gate/up, row-parallel O/down), its share of the KV heads,
/// and an NCCL all-reduce after attention and after the MLP. Each rank is driven by its own thread because every
/// rank must enqueue its collective (<see cref="RankGroup"/>, shared with the CPU group); rank 0 runs on the caller's thread and returns the logits.
/// </summary>
public sealed class TensorParallelCudaRunner : IModelRunner
{
    private readonly CudaModelRunner[] _ranks;
    private readonly NcclCommunicator[] _communicators;
    private readonly RankGroup _group;
    private readonly RankGroup.RankZeroStep _rankZero;
    private readonly RankGroup.RankZeroStep _rankZeroDraw;
    private DeviceSampling[] _draws = [];
    private int[] _drawn = [];
    private bool _allPositions;
    private ShardedKvCache<CudaKvCache>? _cache;
    private bool _disposed;

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
            _ranks[r] = new CudaModelRunner(rankConfig, model.Weights.RopeFactors, options with { Device = r }, device, _communicators[r], CudaWeights.FormatsOf(shard), (_, stream) => CudaWeights.Upload(rankConfig, shard, stream), ownsDevice: true);
        }

        // A rank that fails aborts every communicator of the group (ncclCommAbort), so the others end their all-reduce
        // with an error instead of waiting for it forever; the step then fails with the first rank's error.
        _rankZero = (batch, logits) => _ranks[0].Forward(batch, _cache!.Shard(0), logits, _allPositions);
        _rankZeroDraw = (batch, _) => _ranks[0].TryForwardSampled(batch, _cache!.Shard(0), _draws.AsSpan(0, batch.SequenceCount), _drawn);
        _group = new RankGroup(ranks, "kiln-cuda-rank", (rank, batch) => _ranks[rank].ForwardWithoutOutput(batch, _cache!.Shard(rank), _allPositions), Abort);
        TuneRanks();
    }

    public ModelConfig Config { get; }

    public int MaxBatchTokens => _ranks[0].MaxBatchTokens;

    public string Device => "cuda";

    public int TensorParallelSize => _ranks.Length;

    /// <summary>One rank's runner (for tests and profiling).</summary>
    internal CudaModelRunner Rank(int rank) => _ranks[rank];

    /// <summary>Per GPU: each rank holds 1/t of the KV heads, so a block costs each GPU 1/t of the full size.</summary>
    public long KvBlockBytes(int blockSize) => _ranks[0].KvBlockBytes(blockSize);

    /// <summary>The least free memory of the group's GPUs: every rank allocates the same number of blocks.</summary>
    public long KvMemoryAvailable => _ranks.Min(r => r.KvMemoryAvailable);

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        new ShardedKvCache<CudaKvCache>([.. _ranks.Select(r => (CudaKvCache)r.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence))]);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        ThrowIfAborted();
        _cache = (ShardedKvCache<CudaKvCache>)cache;
        _allPositions = allPositions;
        _group.Run(batch, logits, _rankZero);
    }

    /// <summary>Rank 0 holds the whole classifier's logits and draws the tokens on its GPU; the other ranks run the step.</summary>
    public bool TryForwardSampled(ForwardBatch batch, IPagedKvCache cache, ReadOnlySpan<DeviceSampling> sampling, Span<int> next)
    {
        ThrowIfAborted();
        int rows = batch.SequenceCount;
        if (_draws.Length < rows)
        {
            _draws = new DeviceSampling[rows];
            _drawn = new int[rows];
        }

        sampling[..rows].CopyTo(_draws);
        _cache = (ShardedKvCache<CudaKvCache>)cache;
        _allPositions = false;
        _group.Run(batch, [], _rankZeroDraw);
        _drawn.AsSpan(0, rows).CopyTo(next);
        return true;
    }

    /// <summary>
    /// The ranks' warm-up trials of the matrix-vector kernels (<see cref="CudaModelRunner.TuneProducts"/>) run together
    /// on the group's rank threads, since every trial step all-reduces; a rank that fails aborts the group, as in a step.
    /// </summary>
    private void TuneRanks()
    {
        try
        {
            _group.Run(rank => _ranks[rank].TuneProducts());
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>NCCL cannot resume an aborted communicator: after a rank failed, the group serves no more steps.</summary>
    private void ThrowIfAborted()
    {
        if (_communicators.Any(c => c.Aborted))
        {
            throw new InvalidOperationException("this tensor-parallel GPU group was aborted after one of its ranks failed; NCCL cannot resume it, so the process must restart");
        }
    }

    private void Abort()
    {
        foreach (var communicator in _communicators)
        {
            communicator.Abort();
        }
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

        foreach (var communicator in _communicators)
        {
            communicator.Dispose();
        }
    }
}
