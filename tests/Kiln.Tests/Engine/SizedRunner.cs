using Kiln.Runtime.Backends;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;

namespace Kiln.Tests.Engine;

/// <summary>
/// The real CPU runner claiming the block size and the memory a backend reports (as the CUDA runner does from the
/// device), so that the engine's pool sizing can be checked against numbers the test chose.
/// </summary>
public sealed class SizedRunner(IModelRunner inner, long blockBytes, long memoryAvailable) : IModelRunner
{
    public ModelConfig Config => inner.Config;

    public int MaxBatchTokens => inner.MaxBatchTokens;

    public int TensorParallelSize => inner.TensorParallelSize;

    public long KvBlockBytes(int blockSize) => blockBytes;

    public long KvMemoryAvailable => memoryAvailable;

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        inner.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false) =>
        inner.Forward(batch, cache, logits, allPositions);

    public void Dispose() => inner.Dispose();
}
