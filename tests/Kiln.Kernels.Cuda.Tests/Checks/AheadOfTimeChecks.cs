using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// Kernels compiled ahead of time (<see cref="CudaBackend.CompileKernelsAhead"/>, <c>kiln kernels</c>) land under the
/// key a runner for the same model looks up at warm-up, for one GPU and for a tensor-parallel group, so a runner
/// started on that cache compiles nothing.
/// </summary>
public abstract class AheadOfTimeChecks
{
    [Fact]
    public void KernelsCompiledAhead_AreTheOnesARunnerLoads()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(new RandomLlamaOptions { VocabSize = 300, Hidden = 256, Intermediate = 512, Layers = 1, Heads = 8, KvHeads = 2, ContextLength = 128, Seed = 5 });
        string cache = Path.Combine(Path.GetTempPath(), $"kiln-aot-{Guid.NewGuid():N}");
        try
        {
            int architecture = TestDevice.Device.ComputeCapability;
            var built = Assert.Single(CudaBackend.CompileKernelsAhead(model.Config, [architecture, architecture], cacheDirectory: cache));
            Assert.False(built.FromCache);
            Assert.Equal((architecture, model.Config.HeadDim, 4), (built.Architecture, built.HeadDim, built.GqaGroup));
            Assert.Single(Directory.GetFiles(cache, $"kiln-sm{architecture}-*.cubin"));

            // A group of two splits the heads evenly: the same module, already there.
            Assert.True(Assert.Single(CudaBackend.CompileKernelsAhead(model.Config, [architecture], tensorParallelSize: 2, cacheDirectory: cache)).FromCache);
            Assert.Throws<ArgumentException>(() => CudaBackend.CompileKernelsAhead(model.Config, [architecture], tensorParallelSize: 3, cacheDirectory: cache));

            using var runner = new CudaModelRunner(model, new CudaRunnerOptions { MaxBatchTokens = 16, MaxLogitRows = 4, KernelCacheDirectory = cache });
            Assert.True(runner.Kernels.FromCache, "the runner must find the module compiled ahead, not compile its own");
            Assert.Single(Directory.GetFiles(cache));
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
