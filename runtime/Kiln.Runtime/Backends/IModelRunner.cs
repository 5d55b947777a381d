using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Backends;

/// <summary>
/// A backend that runs one step of the model: the CPU runner, a tensor-parallel group of CPU ranks, or a GPU.
/// The engine hands it flat arrays (<see cref="ForwardBatch"/>) and a KV store, and gets logits back.
/// </summary>
public interface IModelRunner : IDisposable
{
    ModelConfig Config { get; }

    int MaxBatchTokens { get; }

    /// <summary>Where the steps run, as the stats report it: "cpu" or "cuda".</summary>
    string Device => "cpu";

    /// <summary>Tensor-parallel degree: how many ranks (threads or devices) share the model.</summary>
    int TensorParallelSize { get; }

    /// <summary>Creates this backend's KV pool of <paramref name="blockCount"/> blocks.</summary>
    IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence);

    /// <summary>
    /// Runs one step over a pool this runner created; logits are [SequenceCount x vocab] (last token of each
    /// sequence) or, with allPositions, [TokenCount x vocab].
    /// </summary>
    void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false);

    /// <summary>
    /// Runs one step and draws each sequence's next token where the logits are (a GPU), as <paramref name="sampling"/>
    /// says row by row (greedy, or top-k/top-p at a temperature), returning only the ids in <paramref name="next"/>;
    /// false, having done nothing, when this backend cannot (the engine then asks for logits and samples on the host).
    /// </summary>
    bool TryForwardSampled(ForwardBatch batch, IPagedKvCache cache, ReadOnlySpan<DeviceSampling> sampling, Span<int> next) => false;

    /// <summary>Bytes one KV block of <paramref name="blockSize"/> tokens takes in this backend's pool.</summary>
    long KvBlockBytes(int blockSize) => HostKvBlockBytes(Config, blockSize);

    /// <summary>Memory the KV pool is sized from (times the engine's fraction): the process's memory on the CPU, free device memory on a GPU.</summary>
    long KvMemoryAvailable => HostMemoryAvailable;

    /// <summary>The CPU backends' KV block: float32 keys and values in process memory.</summary>
    static long HostKvBlockBytes(ModelConfig config, int blockSize) => PagedKvCache.BlockBytes(config.LayerCount, config.KvDim, blockSize);

    /// <summary>The memory the CPU backends size their KV pool from.</summary>
    static long HostMemoryAvailable => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
}
