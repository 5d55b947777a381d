using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Loading;

namespace Kiln.Kernels.Cuda;

/// <summary>
/// The entry point the CLI and the Functions app use to run a model on NVIDIA GPUs: one <see cref="CudaModelRunner"/>
/// for tensor-parallel size 1, or a group with one rank per GPU joined by NCCL. Throws
/// <see cref="Native.CudaUnavailableException"/>, saying why, where there is no usable GPU.
/// </summary>
public static class CudaBackend
{
    /// <summary>Why the CUDA backend cannot run here, or null when it can.</summary>
    public static string? UnavailableReason => CudaDevice.UnavailableReason();

    public static IModelRunner CreateRunner(LoadedModel model, int tensorParallelSize = 1, int maxBatchTokens = 2048, int maxLogitRows = 256, int maxContext = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tensorParallelSize);
        var options = new CudaRunnerOptions { MaxBatchTokens = maxBatchTokens, MaxLogitRows = maxLogitRows, MaxContext = maxContext };
        if (tensorParallelSize == 1)
        {
            return new CudaModelRunner(model, options);
        }

        int devices = CudaDevice.Count;
        if (devices < tensorParallelSize)
        {
            throw new Native.CudaUnavailableException($"tensor parallelism of {tensorParallelSize} needs {tensorParallelSize} GPUs (one rank per GPU); this machine has {devices}");
        }

        return new TensorParallelCudaRunner(model, tensorParallelSize, options);
    }
}
