using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>How decode attention is split over blocks, and the scratch the runner sizes from it (no device).</summary>
public sealed class AttentionSplitsTests
{
    [Fact]
    public void DecodeSteps_GetAboutTwoBlocksAnSm_UpToTheCap()
    {
        // An H200 (132 SMs) and the 1.24B benchmark model: 32 query heads in groups of 4, so 8 blocks a token unsplit.
        var splits = new AttentionSplits(multiprocessors: 132, headGroups: 8, maxTokens: 512, enabled: true);
        Assert.Equal(AttentionSplits.MaxSplits, splits.For(1, decode: true)); // 264 / 8 = 33, capped at 16
        Assert.Equal(5, splits.For(7, decode: true)); // 264 / 56 = 4.7
        Assert.Equal(2, splits.For(32, decode: true)); // 256 blocks: one short of 264
        Assert.Equal(1, splits.For(33, decode: true));
        Assert.Equal(1, splits.For(128, decode: true));
        Assert.Equal(1, splits.For(1, decode: false)); // steps with prefill tokens have blocks enough
    }

    [Fact]
    public void Scratch_CoversEveryStepThatSplits()
    {
        var splits = new AttentionSplits(multiprocessors: 132, headGroups: 8, maxTokens: 512, enabled: true);
        for (int tokens = 1; tokens <= 512; tokens++)
        {
            int s = splits.For(tokens, decode: true);
            if (s > 1)
            {
                Assert.True((long)tokens * s * 8 <= splits.PartialRecords, $"{tokens} tokens x {s} splits overflow the partials");
                Assert.True(tokens * 8 <= splits.Counters, $"{tokens} tokens overflow the counters");
            }
        }

        Assert.Equal(32 * 8, splits.Counters); // the largest step that splits is 32 tokens
        var few = new AttentionSplits(multiprocessors: 132, headGroups: 8, maxTokens: 4, enabled: true);
        Assert.Equal(4 * 8, few.Counters); // no more than the runner's steps can have
    }

    [Fact]
    public void Disabled_NeverSplits_AndNeedsNoScratch()
    {
        var splits = new AttentionSplits(multiprocessors: 132, headGroups: 8, maxTokens: 512, enabled: false);
        Assert.Equal(1, splits.For(1, decode: true));
        Assert.Equal(0, splits.PartialRecords);
        Assert.Equal(0, splits.Counters);
    }
}
