using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;

namespace Kiln.Tests.Numerics;

/// <summary>
/// Tests that measure process-wide memory: they run alone, after the parallel tests, so that no other test's
/// allocations land in their measurements.
/// </summary>
[CollectionDefinition(nameof(ProcessWideMeasurements), DisableParallelization = true)]
public sealed class ProcessWideMeasurements;

[Collection(nameof(ProcessWideMeasurements))]
public class AllocationTests(ITestOutputHelper output)
{
    [Fact]
    public void DecodeStep_AfterWarmUp_AllocatesNothing()
    {
        var model = new TinyLlama(new TinyLlamaSpec { Hidden = 64, Intermediate = 128, AttentionBias = true, Seed = 41 });
        using var directory = new TempDirectory();
        using var loaded = ModelLoader.Load(TinyCheckpoints.WriteHuggingFace(directory.Path, model).Path);
        // More workers than one, so the step really goes through the pool's threads.
        using var pool = new WorkerPool(Math.Max(2, Environment.ProcessorCount));
        using var runner = new CpuModelRunner(loaded, maxBatchTokens: 16, maxContext: 128, pool);
        var cache = new ContiguousKvCache(loaded.Config, sequences: 4, maxContext: 128);
        int vocab = loaded.Config.VocabSize;
        var logits = new float[16 * vocab];

        // Prefill 4 sequences, then decode all 4 at once each step.
        int[] prompt = model.RandomTokens(16, seed: 1);
        int[] slots = [0, 1, 2, 3];
        int[] fourLengths = [4, 4, 4, 4];
        int[] promptPositions = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];
        runner.Forward(new ForwardBatch(prompt, promptPositions, slots, fourLengths), cache, logits);

        int[] next = new int[4];
        int[] positions = new int[4];
        int[] ones = [1, 1, 1, 1];
        int position = 4;
        void DecodeStep()
        {
            for (int s = 0; s < 4; s++)
            {
                next[s] = Kiln.Runtime.Sampling.Sampler.ArgMax(logits.AsSpan(s * vocab, vocab));
                positions[s] = position;
            }

            position++;
            runner.Forward(new ForwardBatch(next, positions, slots, ones), cache, logits);
        }

        // Past the 30 calls after which tiered compilation recompiles hot methods.
        for (int i = 0; i < 40; i++)
        {
            DecodeStep();
        }

        // Three windows of ten steps. A per-step allocation shows in every window; the runtime's own one-off
        // allocations (once, 24 bytes on this thread in a full-suite run, likely tiered JIT) in at most one.
        const int Windows = 3;
        const int Steps = 10;
        var onThread = new long[Windows];
        var processWide = new long[Windows];
        for (int w = 0; w < Windows; w++)
        {
            long threadBefore = GC.GetAllocatedBytesForCurrentThread();
            long processBefore = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < Steps; i++)
            {
                DecodeStep();
            }

            processWide[w] = GC.GetTotalAllocatedBytes(precise: true) - processBefore;
            onThread[w] = GC.GetAllocatedBytesForCurrentThread() - threadBefore;
        }

        output.WriteLine($"{Windows} windows of {Steps} decode steps of 4 sequences: [{string.Join(", ", onThread)}] bytes on the calling thread, [{string.Join(", ", processWide)}] bytes process-wide");
        Assert.Equal(0, onThread.Min());
        // The pool's workers are other threads, so only the process-wide count sees them. It also counts whatever the
        // runtime and the test framework allocate meanwhile, hence the minimum over windows and a small allowance:
        // a step runs the pool ~20 times, so any per-run or per-step object on a worker exceeds 256 bytes a window.
        Assert.True(processWide.Min() < 256, $"every window of {Steps} decode steps allocated process-wide: [{string.Join(", ", processWide)}] bytes");
    }
}
