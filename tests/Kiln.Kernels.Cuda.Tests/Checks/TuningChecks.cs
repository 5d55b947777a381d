using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The warm-up trials (<see cref="GemvChoices"/>): a runner times every alternative of every product its decode
/// steps launch, keeps the fastest, and then serves steps that still match the CPU backend; a tensor-parallel group
/// runs its ranks' trials together. On the emulator the times mean nothing, but the schedule, the bookkeeping and the
/// kernels it picks are the same.
/// </summary>
public abstract class TuningChecks
{
    private static readonly RandomLlamaOptions Small = new()
    {
        VocabSize = 1000,
        Hidden = 256,
        Intermediate = 384, // gate/up (768 x 256) is smaller than the classifier (1000 x 256)
        Layers = 2,
        Heads = 4,
        KvHeads = 2,
        ContextLength = 256,
        Seed = 31,
    };

    private static CudaRunnerOptions Tuned(bool fused = true) => new()
    {
        MaxBatchTokens = 64,
        MaxLogitRows = 64,
        KernelCacheDirectory = TestDevice.CacheDirectory,
        FusedSmallBatch = fused,
        TuneMinimumBytes = 0,
    };

    [Theory]
    [InlineData(true, GgmlType.BF16)]
    [InlineData(false, GgmlType.BF16)]
    [InlineData(true, GgmlType.Q8_0)]
    public void WarmUp_TimesEveryAlternativeOfEveryDecodeProduct_AndKeepsTheFastest(bool fused, GgmlType weights)
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small, weights);
        using var gpu = new CudaModelRunner(model, Tuned(fused));
        var c = model.Config;
        int qkvRows = c.QueryDim + (2 * c.KvDim);
        // The products of a decode step, as the trials name them: (family, rows, columns).
        (string, int, int)[] expected = fused
            ? [("gemv_norm_rope", qkvRows, c.HiddenSize), ("gemv_add", c.HiddenSize, c.QueryDim), ("gemv_norm_swiglu", 2 * c.IntermediateSize, c.HiddenSize),
               ("gemv_add", c.HiddenSize, c.IntermediateSize), ("gemv", c.VocabSize, c.HiddenSize)]
            : [("gemv", qkvRows, c.HiddenSize), ("gemv", c.HiddenSize, c.QueryDim), ("gemv", 2 * c.IntermediateSize, c.HiddenSize),
               ("gemv", c.HiddenSize, c.IntermediateSize), ("gemv", c.VocabSize, c.HiddenSize)];
        var tunings = gpu.GemvChoices.Tunings;
        foreach (int tokens in (int[])[1, 8])
        {
            var trial = tunings.Where(t => t.Tokens == tokens).Select(t => (t.Family, t.Rows, t.Columns)).ToHashSet();
            Assert.True(trial.SetEquals(expected.Distinct()), $"at {tokens} tokens the trials covered {string.Join(", ", trial)}");
        }

        foreach (var tuning in tunings)
        {
            Assert.True(tuning.Alternatives.Count > 1, $"{tuning.Family} had nothing to choose from");
            Assert.All(tuning.Alternatives, a => Assert.True(a.Microseconds > 0, $"{a.Kernel} was not timed"));
            Assert.All(tuning.Alternatives, a => Assert.Equal(tuning.Tokens == 1, a.Kernel.EndsWith("_t1", StringComparison.Ordinal)));
            var fastest = tuning.Alternatives.MinBy(a => a.Microseconds);
            Assert.Equal(fastest.Kernel, tuning.Chosen);
        }

        // What the host logs: the trials, and the kernels they kept other than the defaults.
        string described = CudaBackend.Describe(gpu) ?? "";
        Assert.Contains($"matrix-vector trials {gpu.GemvChoices.TrialTime.TotalMilliseconds:F0} ms over {tunings.Count} products", described, StringComparison.Ordinal);
        Assert.All(tunings.Where(t => t.Chosen != t.Alternatives[0].Kernel), t => Assert.Contains(t.Chosen, described, StringComparison.Ordinal));

        // After the trials the runner serves with what it chose, and still computes what the CPU does.
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 64, maxContext: 256);
        Assert.Null(CudaBackend.Describe(cpu));
        using var cpuCache = cpu.CreateKvCache(8, 16, 2, 4);
        using var gpuCache = gpu.CreateKvCache(8, 16, 2, 4);
        int[] tables = [4, 0, 0, 0, /* row 1 */ 6, 1, 0, 0];
        cpuCache.Bind(tables, 4, 2);
        gpuCache.Bind(tables, 4, 2);
        Compare(cpu, gpu, cpuCache, gpuCache, [5, 9, 300, 41, 7], [0, 1, 2, 0, 1], [0, 1], [3, 2]);
        Compare(cpu, gpu, cpuCache, gpuCache, [17, 23], [3, 2], [0, 1], [1, 1]);

        // Each trial was checked in whole graph steps against the defaults; a one-token decode launches the trial's
        // kernels where that check kept them, else the defaults.
        Assert.Equal([1, 8], gpu.GemvChoices.StepChecks.Select(check => check.Tokens));
        Assert.All(gpu.GemvChoices.StepChecks, check => Assert.True(check.ChosenMilliseconds > 0 && check.DefaultMilliseconds > 0));
        bool kept = gpu.GemvChoices.StepChecks[0].Kept;
        using var profiler = new KernelProfiler();
        gpu.Profiler = profiler;
        Compare(cpu, gpu, cpuCache, gpuCache, [99], [4], [0], [1]);
        gpu.Profiler = null;
        var launched = profiler.Collect().Select(p => p.Name).ToHashSet();
        foreach (var tuning in tunings.Where(t => t.Tokens == 1))
        {
            string kernel = kept ? tuning.Chosen
                : tuning.Family == "gemv" ? GemvVariant.ForTokens(weights == GgmlType.BF16 ? GemvVariant.For(tuning.Rows, tuning.Columns).Kernel : GemvVariant.For(tuning.Rows, tuning.Columns).CompactKernel(tuning.Format), 1)
                : tuning.Alternatives[0].Kernel;
            Assert.Contains($"{kernel} {tuning.Rows}x{tuning.Columns}", launched);
        }
    }

    [Fact]
    public void Trials_AreSkippedWhenOffOrEveryMatrixIsSmall()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small);
        using var off = new CudaModelRunner(model, Tuned() with { TuneProducts = false });
        Assert.Empty(off.GemvChoices.Tunings);
        long largest = off.Weights.LargestMatrixBytes;
        using var small = new CudaModelRunner(model, Tuned() with { TuneMinimumBytes = largest + 1 });
        Assert.Empty(small.GemvChoices.Tunings);
        using var one = new CudaModelRunner(model, Tuned() with { TuneMinimumBytes = largest, CudaGraphs = false }); // no check in graph steps: none to time
        Assert.Empty(one.GemvChoices.StepChecks);
        Assert.Equal([(model.Config.VocabSize, 1), (model.Config.VocabSize, 8)], one.GemvChoices.Tunings.Select(t => (t.Rows, t.Tokens)));
    }

    [Fact]
    public void TensorParallelRanks_RunTheirTrialsTogether_AndStillMatchTheCpu()
    {
        TestDevice.RequireDevices(2);
        using var model = TestDevice.RandomModel(Small);
        using var group = new TensorParallelCudaRunner(model, 2, Tuned() with { CudaGraphs = false }); // the trials, not their check in graph steps (slow emulated)
        Assert.Contains(" x2; ", CudaBackend.Describe(group), StringComparison.Ordinal);
        for (int rank = 0; rank < 2; rank++)
        {
            var families = group.Rank(rank).GemvChoices.Tunings.Select(t => t.Family).ToHashSet();
            Assert.Contains("gemv_norm_rope", families);
            // Rank 0 adds its partial output and down products into the stream; the others store theirs (plain products).
            Assert.Equal(rank == 0, families.Contains("gemv_add"));
        }

        using var cpu = new CpuModelRunner(model, maxBatchTokens: 64, maxContext: 256);
        using var cpuCache = cpu.CreateKvCache(8, 16, 2, 4);
        using var groupCache = group.CreateKvCache(8, 16, 2, 4);
        int[] tables = [2, 0, 0, 0, /* row 1 */ 3, 0, 0, 0];
        cpuCache.Bind(tables, 4, 2);
        groupCache.Bind(tables, 4, 2);
        Compare(cpu, group, cpuCache, groupCache, [8, 6, 4, 2], [0, 1, 0, 1], [0, 1], [2, 2]);
        Compare(cpu, group, cpuCache, groupCache, [3, 5], [2, 2], [0, 1], [1, 1]);
    }

    private static void Compare(CpuModelRunner cpu, IModelRunner gpu, IPagedKvCache cpuCache, IPagedKvCache gpuCache, int[] ids, int[] positions, int[] sequences, int[] lengths)
    {
        var expected = new float[sequences.Length * cpu.Config.VocabSize];
        var actual = new float[expected.Length];
        actual.AsSpan().Fill(float.NaN);
        cpu.Forward(new ForwardBatch(ids, positions, sequences, lengths), (PagedKvCache)cpuCache, expected);
        gpu.Forward(new ForwardBatch(ids, positions, sequences, lengths), gpuCache, actual);
        double error = TestDevice.RelativeError(actual, expected);
        Assert.True(error < 1e-2, $"logits of a step of {ids.Length} tokens differ from the CPU backend by {error:E2} (relative L2)");
    }
}
