using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu.TensorParallel;
using Kiln.Runtime.Loading;

namespace Kiln.Runtime.Cpu;

/// <summary>Builds the CPU backend for a tensor-parallel degree: one runner, or a group of ranks.</summary>
public static class ModelRunners
{
    public static IModelRunner CreateCpu(LoadedModel model, int tensorParallelSize, int maxBatchTokens, int maxContext, int threads = 0) =>
        tensorParallelSize <= 1
            ? new CpuModelRunner(model, maxBatchTokens, maxContext, pool: null, threads)
            : new TensorParallelCpuRunner(model, tensorParallelSize, maxBatchTokens, maxContext, threads);

    /// <summary>
    /// A KV block's bytes on the CPU backend at a tensor-parallel degree, before the backend exists (the engine sizes
    /// the pool first): one model's worth, or more when the ranks replicate KV heads.
    /// </summary>
    public static long CpuKvBlockBytes(Models.ModelConfig config, int tensorParallelSize, int blockSize) =>
        tensorParallelSize <= 1
            ? IModelRunner.HostKvBlockBytes(config, blockSize)
            : TensorParallelCpuRunner.BlockBytes(config, tensorParallelSize, blockSize);
}
