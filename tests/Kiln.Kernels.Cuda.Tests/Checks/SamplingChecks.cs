using Kiln.Kernels.Cuda.Device;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>Top-k/top-p sampling on the device against the distribution computed here in float64.</summary>
public abstract class SamplingChecks
{
    [Theory]
    [InlineData(0.8f, 10, 1f)]
    [InlineData(1.0f, 0, 0.7f)]
    [InlineData(1.3f, 20, 0.9f)]
    public void TopKTopP_DrawsFollowTheFilteredDistribution(float temperature, int topK, float topP)
    {
        TestDevice.Require();
        const int Vocab = 64;
        int draws = TestDevice.IsEmulated ? 500 : 20000; // the emulator runs each draw's 1024 threads on one core
        var row = TestDevice.Random(Vocab, 15, 3f);
        // Every draw is a row of the same logits with its own seed: one launch samples them all.
        var logits = new float[draws * Vocab];
        for (int d = 0; d < draws; d++)
        {
            row.CopyTo(logits, d * Vocab);
        }

        using var logitBuffer = TestDevice.Floats(logits);
        using var temperatures = TestDevice.Floats(Enumerable.Repeat(temperature, draws).ToArray());
        using var topKs = TestDevice.Ints(Enumerable.Repeat(topK, draws).ToArray());
        using var topPs = TestDevice.Floats(Enumerable.Repeat(topP, draws).ToArray());
        using var seeds = new DeviceBuffer(draws * sizeof(ulong));
        seeds.Upload<ulong>(Enumerable.Range(0, draws).Select(i => (ulong)i * 7919).ToArray(), TestDevice.Stream);
        using var output = TestDevice.Poisoned(draws * 4);
        TestDevice.Kernels.Launch("sample_rows", ((uint)draws, 1), 1024, TestDevice.Stream,
            [output.Pointer, logitBuffer.Pointer, KernelModule.Int(Vocab), temperatures.Pointer, topKs.Pointer, topPs.Pointer, seeds.Pointer, 3]);
        var drawn = new int[draws];
        output.Download<int>(drawn, TestDevice.Stream);

        // Reference: softmax(logits / T), keep the top k, then the smallest head holding top_p of what is left.
        var order = Enumerable.Range(0, Vocab).OrderByDescending(i => row[i]).ToArray();
        int kept = topK > 0 ? Math.Min(topK, Vocab) : Vocab;
        double max = row.Max();
        var weights = order.Take(kept).Select(i => Math.Exp((row[i] - max) / temperature)).ToArray();
        double total = weights.Sum();
        int head = 0;
        for (double mass = 0; head < kept && mass < topP * total; head++)
        {
            mass += weights[head];
        }

        var allowed = order.Take(head).ToArray();
        double allowedMass = weights.Take(head).Sum();
        var counts = new int[Vocab];
        foreach (int id in drawn)
        {
            Assert.InRange(id, 0, Vocab - 1);
            Assert.Contains(id, allowed);
            counts[id]++;
        }

        for (int i = 0; i < head; i++)
        {
            double p = weights[i] / allowedMass;
            double sigma = Math.Sqrt(p * (1 - p) / draws);
            Assert.InRange((double)counts[allowed[i]] / draws, p - (5 * sigma) - 1e-3, p + (5 * sigma) + 1e-3);
        }
    }

    [Fact]
    public void ZeroTemperature_IsGreedy_AndASeedRepeats()
    {
        TestDevice.Require();
        const int Vocab = 5000;
        var logits = TestDevice.Random(2 * Vocab, 16, 5f);
        using var logitBuffer = TestDevice.Floats(logits);
        using var temperatures = TestDevice.Floats([0f, 1f]);
        using var topKs = TestDevice.Ints([0, 50]);
        using var topPs = TestDevice.Floats([1f, 0.95f]);
        using var seeds = new DeviceBuffer(2 * sizeof(ulong));
        seeds.Upload<ulong>([1, 2], TestDevice.Stream);
        int[] Draw(ulong step)
        {
            using var output = TestDevice.Poisoned(8);
            TestDevice.Kernels.Launch("sample_rows", (2, 1), 1024, TestDevice.Stream,
                [output.Pointer, logitBuffer.Pointer, KernelModule.Int(Vocab), temperatures.Pointer, topKs.Pointer, topPs.Pointer, seeds.Pointer, step]);
            var ids = new int[2];
            output.Download<int>(ids, TestDevice.Stream);
            return ids;
        }

        var first = Draw(0);
        Assert.Equal(logits.AsSpan(0, Vocab).IndexOf(logits.AsSpan(0, Vocab).ToArray().Max()), first[0]);
        Assert.Equal(first, Draw(0));
        var steps = Enumerable.Range(1, 20).Select(s => Draw((ulong)s)[1]).ToHashSet();
        Assert.True(steps.Count > 1, "different steps must be able to draw different tokens");

        // Row 1 keeps its top 50, then the head of those holding 95% of their mass (at temperature 1): on a wide row
        // the thresholds' search runs every one of its passes, and every draw must land inside.
        var row = logits.AsSpan(Vocab, Vocab).ToArray();
        var top = Enumerable.Range(0, Vocab).OrderByDescending(i => row[i]).Take(50).ToArray();
        var weights = top.Select(i => Math.Exp(row[i] - row[top[0]])).ToArray();
        int head = 0;
        for (double mass = 0; mass < 0.95 * weights.Sum(); head++)
        {
            mass += weights[head];
        }

        Assert.InRange(head, 2, 49); // both filters bite
        Assert.All(steps, id => Assert.Contains(id, top.Take(head)));
    }
}
