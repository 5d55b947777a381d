using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>The warm-up trials' bookkeeping, on made-up timings: what a trial launches, and what it keeps.</summary>
public sealed class GemvChoicesTests
{
    private const WeightFormat Bf16 = WeightFormat.Bf16;

    [Fact]
    public void ATrial_LaunchesTheAlternativeAskedFor_OnlyWhereTheMatrixIsLargeEnough()
    {
        var choices = new GemvChoices(minimumBytes: 1 << 20);
        Assert.Equal("gemv_add_t1", choices.Fused("gemv_add", Bf16, 2048, 8192, 1)); // no trial: the default
        Assert.Equal(GemvVariant.For(128256, 2048), choices.Plain(Bf16, 128256, 2048, 1));

        choices.Trial = 1;
        Assert.Equal("gemv_add_u8_t1", choices.Fused("gemv_add", Bf16, 2048, 8192, 1));
        Assert.Equal("gemv_norm_rope_u8_q8", choices.Fused("gemv_norm_rope", WeightFormat.Q8, 3072, 2048, 4));
        Assert.Equal("gemv_add", choices.Fused("gemv_add", Bf16, 64, 64, 4)); // 8 KB: not worth a trial
        choices.Trial = 3; // the fused products have two alternatives: 3 is the second again; the plain ones have five
        Assert.Equal("gemv_norm_swiglu_u8_t1", choices.Fused("gemv_norm_swiglu", Bf16, 16384, 2048, 1));
        Assert.Equal(GemvVariant.All[3], choices.Plain(Bf16, 128256, 2048, 1));
        Assert.Equal(GemvVariant.Alternatives(WeightFormat.F16)[0], choices.Plain(WeightFormat.F16, 128256, 2048, 1)); // three for f16
    }

    [Fact]
    public void Choose_KeepsEachProductsFastestAlternative_ByItsBestRound()
    {
        var choices = new GemvChoices(minimumBytes: 0);
        choices.Trial = 0;
        choices.Fused("gemv_add", Bf16, 2048, 8192, 1);
        choices.Plain(WeightFormat.Q8, 128256, 2048, 1);
        choices.Fused("gemv_add", Bf16, 2048, 8192, 8); // the eight-token class: chosen by its own trial
        choices.Trial = -1;

        // The default is faster on average, the deep form in its best round: the best round counts (a kernel's
        // first launch also loads it). Times are milliseconds over calls, as KernelProfiler.Collect gives them.
        IReadOnlyList<(string, double, int)> first = [("gemv_add_t1 2048x8192", 10.0, 1), ("gemv_add_u8_t1 2048x8192", 30.0, 2),
            ("gemv_q8_t1 128256x2048", 5.0, 1), ("gemv_q8_r2_t1 128256x2048", 4.0, 1), ("gemv_q8_r4_t1 128256x2048", 4.5, 1)];
        IReadOnlyList<(string, double, int)> second = [("gemv_add_t1 2048x8192", 24.0, 2), ("gemv_add_u8_t1 2048x8192", 9.0, 1)];
        choices.Choose([first, second], tokens: 1);

        Assert.Equal("gemv_add_u8_t1", choices.Fused("gemv_add", Bf16, 2048, 8192, 1));
        Assert.Equal(GemvVariant.TwoRows, choices.Plain(WeightFormat.Q8, 128256, 2048, 1));
        Assert.Equal("gemv_add", choices.Fused("gemv_add", Bf16, 2048, 8192, 8)); // not chosen yet: the default
        Assert.Equal(GemvVariant.For(128256, 2048), choices.Plain(WeightFormat.Q8, 128256, 2048, 8));

        var add = Assert.Single(choices.Tunings, t => t.Family == "gemv_add");
        Assert.Equal([("gemv_add_t1", 10_000.0), ("gemv_add_u8_t1", 9_000.0)], add.Alternatives);
        Assert.Equal("gemv_add_u8_t1", add.Chosen);
        var classifier = Assert.Single(choices.Tunings, t => t.Family == "gemv");
        Assert.Equal("gemv_q8_r2_t1", classifier.Chosen);
        Assert.Equal(2, choices.Tunings.Count);

        // A check in whole steps that finds the defaults faster drops the choices of that step size only; within
        // 1% (noise) they stay.
        Assert.True(choices.Confirm(8, chosenMilliseconds: 1.000, defaultMilliseconds: 0.995));
        Assert.Equal("gemv_add", choices.Fused("gemv_add", Bf16, 2048, 8192, 8)); // nothing chosen at 8 tokens: nothing to keep
        Assert.False(choices.Confirm(1, chosenMilliseconds: 1.10, defaultMilliseconds: 1.00));
        Assert.Equal("gemv_add_t1", choices.Fused("gemv_add", Bf16, 2048, 8192, 1));
        Assert.Equal(GemvVariant.For(128256, 2048), choices.Plain(WeightFormat.Q8, 128256, 2048, 1));
        Assert.Equal([new GemvStepCheck(8, 1.000, 0.995, true), new GemvStepCheck(1, 1.10, 1.00, false)], choices.StepChecks);

        // A trial that timed nothing for a product keeps what it had.
        choices.Trial = 0;
        choices.Fused("gemv_add", Bf16, 2048, 8192, 8);
        choices.Trial = -1;
        choices.Choose([[]], tokens: 8);
        Assert.Equal("gemv_add", choices.Fused("gemv_add", Bf16, 2048, 8192, 8));
        Assert.Equal(2, choices.Tunings.Count);
    }
}
