using System.Runtime.InteropServices;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// A tensor-parallel group whose rank 1 fails mid-step (the emulator fails its attention launches,
/// KILN_EMU_FAIL_KERNEL): the rank aborts the group's NCCL communicators, so rank 0 leaves the all-reduce it waits in
/// instead of hanging, the step fails with rank 1's error, and the group refuses further steps. Only the emulator can
/// make one GPU of a group fail on demand.
/// </summary>
[Collection(EmulatedDeviceOne.Name)]
public sealed partial class RankFailureTests_OnEmulator_NeedsGxx
{
    [Fact]
    public async Task ARankThatFails_AbortsTheGroup_AndTheStepReportsItsError()
    {
        TestDevice.RequireDevices(2);
        using var model = TestDevice.RandomModel(new RandomLlamaOptions
        {
            VocabSize = 300,
            Hidden = 128,
            Intermediate = 256,
            Layers = 2,
            Heads = 4,
            KvHeads = 2,
            ContextLength = 128,
            Seed = 5,
        });
        using var group = new TensorParallelCudaRunner(model, 2, new CudaRunnerOptions { MaxBatchTokens = 32, MaxLogitRows = 8, KernelCacheDirectory = TestDevice.CacheDirectory });
        using var cache = group.CreateKvCache(4, 16, 1, 4);
        cache.Bind([0, 1, 2, 3], 4, 1);
        var logits = new float[300];
        group.Forward(new ForwardBatch([1, 2, 3], [0, 1, 2], [0], [3]), cache, logits); // the group works

        setenv("KILN_EMU_FAIL_KERNEL", "paged_attention@1", 1);
        try
        {
            // Without the abort rank 0 would wait in the emulated all-reduce for 120 s; the test allows far less.
            var failure = await Task.Run(() => Assert.Throws<InvalidOperationException>(() =>
                group.Forward(new ForwardBatch([4], [3], [0], [1]), cache, logits))).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
            Assert.Contains("rank 1 failed", failure.Message, StringComparison.Ordinal);
            Assert.Contains("paged_attention", failure.Message, StringComparison.Ordinal);
        }
        finally
        {
            unsetenv("KILN_EMU_FAIL_KERNEL");
        }

        var refused = Assert.Throws<InvalidOperationException>(() => group.Forward(new ForwardBatch([4], [3], [0], [1]), cache, logits));
        Assert.Contains("aborted", refused.Message, StringComparison.Ordinal);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unsetenv(string name);
}
