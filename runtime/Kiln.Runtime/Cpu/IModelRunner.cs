using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// A backend that runs one step of the model: the CPU runner, a tensor-parallel group of CPU ranks, or a GPU.
/// The engine hands it flat arrays (<see cref="ForwardBatch"/>) and a KV store, and gets logits back.
/// </summary>
public interface IModelRunner : IDisposable
{
    ModelConfig Config { get; }

    int MaxBatchTokens { get; }

    /// <summary>Tensor-parallel degree: how many ranks (threads or devices) share the model.</summary>
    int TensorParallelSize { get; }

    /// <summary>Runs one step; logits are [SequenceCount x vocab] (last token of each sequence) or, with allPositions, [TokenCount x vocab].</summary>
    void Forward(ForwardBatch batch, IKvCache cache, Span<float> logits, bool allPositions = false);
}
