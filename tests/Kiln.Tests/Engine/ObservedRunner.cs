using Kiln.Runtime.Backends;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;

namespace Kiln.Tests.Engine;

/// <summary>Sees every step's batch before the real runner runs it (and may throw, to stand in for a device fault).</summary>
public delegate void BatchObserver(ForwardBatch batch);

/// <summary>The real CPU runner with an observer in front of it: the engine under test runs real numerics.</summary>
public sealed class ObservedRunner(IModelRunner inner, BatchObserver observe) : IModelRunner
{
    public ModelConfig Config => inner.Config;

    public int MaxBatchTokens => inner.MaxBatchTokens;

    public int TensorParallelSize => inner.TensorParallelSize;

    public IPagedKvCache CreateKvCache(int blockCount, int blockSize, int maxSequences, int maxBlocksPerSequence) =>
        inner.CreateKvCache(blockCount, blockSize, maxSequences, maxBlocksPerSequence);

    public void Forward(ForwardBatch batch, IPagedKvCache cache, Span<float> logits, bool allPositions = false)
    {
        observe(batch);
        inner.Forward(batch, cache, logits, allPositions);
    }

    public void Dispose() => inner.Dispose();
}
