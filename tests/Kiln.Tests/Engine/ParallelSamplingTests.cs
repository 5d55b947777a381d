using Kiln.Runtime.Engine;

namespace Kiln.Tests.Engine;

/// <summary>
/// n samples of one request fork from its prompt (sharing its blocks, copying the partly filled last one before
/// writing): greedy, every sample is exactly the one-sample answer, with the pool ample and with a pool so small that
/// the samples are preempted and recomputed.
/// </summary>
public sealed class ParallelSamplingTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(512)] // room for everything
    [InlineData(14)] // 3 samples of 10 + 24 tokens need 27 blocks of 4: preempted and recomputed on the way
    public async Task GreedyThreeSamples_EachEqualsTheOneSampleAnswer(int blocks)
    {
        int[] prompt = EngineTestModel.Prompt(31, 10); // 2.5 blocks: the third is shared, partly filled
        List<int> alone;
        using (var ample = fixture.CreateEngine())
        {
            alone = (await EngineTestModel.RunAsync(ample, EngineTestModel.Request(prompt, maxTokens: 24), Ct)).Tokens[0];
        }

        using var engine = fixture.CreateEngine(blocks: blocks, maxSequences: 3);
        var three = await EngineTestModel.RunAsync(engine, EngineTestModel.Request(prompt, maxTokens: 24, n: 3), Ct);

        Assert.Equal(24, alone.Count);
        for (int s = 0; s < 3; s++)
        {
            Assert.Equal(alone, three.Tokens[s]);
            Assert.Equal(FinishReason.Length, three.Finish[s]);
        }

        Assert.Equal(blocks < 27, engine.GetStats().Preemptions > 0);
    }
}
