using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Formats.Gguf;
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
            Assert.Equal(Enum.GetValues<WeightFormat>(), runner.Kernels.WeightFormats); // the whole module, f16 and Q8 products too
            Assert.Single(Directory.GetFiles(cache));
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    /// <summary>
    /// Without a module compiled ahead, a runner compiles only the products its weights' formats need (the f16 and Q8
    /// ones are most of NVRTC's time), each set under its own key, and runs on them.
    /// </summary>
    [Fact]
    public void ARunnersOwnCompile_LeavesOutTheProductsOfFormatsItsWeightsLack()
    {
        TestDevice.Require();
        var shape = new RandomLlamaOptions { VocabSize = 300, Hidden = 256, Intermediate = 512, Layers = 1, Heads = 8, KvHeads = 2, ContextLength = 128, Seed = 6 };
        string cache = Path.Combine(Path.GetTempPath(), $"kiln-formats-{Guid.NewGuid():N}");
        try
        {
            var options = new CudaRunnerOptions { MaxBatchTokens = 16, MaxLogitRows = 4, KernelCacheDirectory = cache };
            using (var bf16 = TestDevice.RandomModel(shape))
            using (var runner = new CudaModelRunner(bf16, options))
            {
                Assert.False(runner.Kernels.FromCache);
                Assert.Equal([WeightFormat.Bf16], runner.Kernels.WeightFormats);
                Assert.True(runner.Kernels.Has("gemv_norm_rope_t1"));
                Assert.False(runner.Kernels.Has("gemv_norm_rope_q8_t1") || runner.Kernels.Has("gemv_f16"));
                Assert.Equal(300, Decode(runner).Length);
            }

            using (var q8 = TestDevice.RandomModel(shape, GgmlType.Q8_0))
            using (var runner = new CudaModelRunner(q8, options))
            {
                Assert.False(runner.Kernels.FromCache);
                Assert.Equal([WeightFormat.Bf16, WeightFormat.Q8], runner.Kernels.WeightFormats);
                Assert.True(runner.Kernels.Has("gemv_norm_rope_q8_t1") && runner.Kernels.Has("gemv_add_u8_q8"));
                Assert.False(runner.Kernels.Has("gemv_f16"));
                Assert.Equal(300, Decode(runner).Length);
            }

            Assert.Equal(2, Directory.GetFiles(cache).Length);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    /// <summary>A prompt of three tokens, then one decode step (the one-token products): its logits.</summary>
    private static float[] Decode(CudaModelRunner runner)
    {
        using var kv = runner.CreateKvCache(2, 16, 1, 2);
        kv.Bind([0, 1], 2, 1);
        var logits = new float[runner.Config.VocabSize];
        runner.Forward(new ForwardBatch([1, 2, 3], [0, 1, 2], [0], [3]), kv, logits);
        runner.Forward(new ForwardBatch([4], [3], [0], [1]), kv, logits);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        return logits;
    }
}
