using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu.TensorParallel;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;

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

    /// <summary>
    /// What a CUDA runner's warm-up did, for the host's log: the GPU, whether the kernels came from the cache, which
    /// matrix-vector kernels the trials chose (those that differ from the defaults) and whether whole decode steps
    /// confirmed them. Null for another runner.
    /// </summary>
    public static string? Describe(IModelRunner runner)
    {
        var rank = runner switch
        {
            CudaModelRunner single => single,
            TensorParallelCudaRunner group => group.Rank(0),
            _ => null,
        };
        if (rank is null)
        {
            return null;
        }

        var choices = rank.GemvChoices;
        var other = choices.Tunings.Where(t => t.Chosen != t.Alternatives[0].Kernel).Select(t => $"{t.Family} {t.Rows}x{t.Columns} at {t.Tokens}: {t.Chosen}").ToArray();
        return $"{rank.Gpu.Name} x{runner.TensorParallelSize}; kernels {(rank.Kernels.FromCache ? "from the cache" : "compiled")} in {rank.Kernels.CompileTime.TotalMilliseconds:F0} ms; " +
            $"matrix-vector trials {choices.TrialTime.TotalMilliseconds:F0} ms over {choices.Tunings.Count} products" +
            (other.Length == 0 ? "" : $", chose other than the first: {string.Join("; ", other)}") +
            string.Concat(choices.StepChecks.Select(c => $"; a {c.Tokens}-token step {c.ChosenMilliseconds:F3} ms with them, {c.DefaultMilliseconds:F3} ms with the defaults ({(c.Kept ? "kept" : "dropped")})"));
    }

    /// <summary>
    /// Compiles the kernels a model needs on GPUs of the given compute capabilities (90 for sm_90) into the kernel
    /// cache, without a GPU: only NVRTC is needed. A runner started later with the same cache (KILN_CUDA_CACHE)
    /// then loads them instead of compiling at warm-up, which is what a pod scaled up from zero wants.
    /// </summary>
    public static IReadOnlyList<AheadOfTimeKernels> CompileKernelsAhead(ModelConfig config, IReadOnlyList<int> architectures, int tensorParallelSize = 1, string? cacheDirectory = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tensorParallelSize);
        WeightSharding.Check(config, tensorParallelSize);
        var (headDim, gqaGroup) = KernelModule.ShapeFor(WeightSharding.RankConfig(config, tensorParallelSize));
        string directory = cacheDirectory ?? KernelCompiler.DefaultCacheDirectory();
        string source = KernelCompiler.Source();
        var built = new List<AheadOfTimeKernels>();
        foreach (int architecture in architectures.Distinct())
        {
            if (architecture < 70)
            {
                throw new ArgumentOutOfRangeException(nameof(architectures), architecture, "Kiln's kernels need compute capability 7.0 (sm_70) or later");
            }

            var clock = System.Diagnostics.Stopwatch.StartNew();
            byte[] cubin;
            bool fromCache;
            try
            {
                cubin = KernelCompiler.Compile(source, architecture, KernelModule.Defines(headDim, gqaGroup), directory, out fromCache);
            }
            catch (DllNotFoundException e)
            {
                throw new Native.CudaUnavailableException("compiling kernels ahead needs NVRTC (libnvrtc.so.13, .12 or .11.2, found on the loader path, under /usr/local/cuda, CUDA_PATH or KILN_CUDA_LIB; on Debian 12 kernels/tools/install-nvrtc.sh installs it), though no GPU; it was not found", e);
            }

            built.Add(new AheadOfTimeKernels(architecture, headDim, gqaGroup, cubin.Length, fromCache, clock.Elapsed, directory, KernelCompiler.NvrtcVersion()));
        }

        return built;
    }
}

/// <summary>One module compiled ahead of time: for sm_<paramref name="Architecture"/>, a head size and an attention group.</summary>
/// <remarks>Only runners with the same <paramref name="NvrtcVersion"/> find it: the version is part of the cache key.</remarks>
public sealed record AheadOfTimeKernels(int Architecture, int HeadDim, int GqaGroup, int Bytes, bool FromCache, TimeSpan Time, string CacheDirectory, string NvrtcVersion);
