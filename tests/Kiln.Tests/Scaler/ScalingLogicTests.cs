using System.Text;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Scaling;

namespace Kiln.Tests.Scaler;

public sealed class ScalingLogicTests
{
    [Fact]
    public void Decide_UncappedMetricIsTheWholeBacklog()
    {
        var d = ScalingMath.Decide(new ScalingInputs(QueueTokens: 2500, PodTokens: 500, RunningSequences: 3, CurrentReplicas: 1, FreeGroups: 10, TargetBacklogPerReplica: 1000, ActivationThreshold: 0));
        Assert.Equal(3000, d.Metric);
        Assert.Equal(3, d.WantedReplicas);
        Assert.False(d.Capped);
        Assert.True(d.Active);
    }

    [Fact]
    public void Decide_CapsDesiredReplicasAtCurrentPlusFreeGroups()
    {
        var d = ScalingMath.Decide(new ScalingInputs(50_000, 0, 0, CurrentReplicas: 2, FreeGroups: 1, 1000, 0));
        Assert.True(d.Capped);
        Assert.Equal(50, d.WantedReplicas);
        Assert.Equal(3, d.AllowedReplicas);
        Assert.Equal(3, ScalingMath.ReplicasFor(d.Metric, 1000));
    }

    [Theory]
    [InlineData(0.1, 3)]
    [InlineData(0.7, 7)]
    [InlineData(333.3, 9)]
    public void Decide_CappedMetricNeverRoundsAboveAllowed(double target, int allowed)
    {
        var d = ScalingMath.Decide(new ScalingInputs(1e9, 0, 0, allowed, 0, target, 0));
        Assert.Equal(allowed, ScalingMath.ReplicasFor(d.Metric, target));
    }

    [Fact]
    public void Decide_ActivationThresholdAndRunningSequences()
    {
        Assert.False(ScalingMath.Decide(new ScalingInputs(0, 0, 0, 0, 4, 1000, 0)).Active);
        Assert.True(ScalingMath.Decide(new ScalingInputs(1, 0, 0, 0, 4, 1000, 0)).Active);
        Assert.False(ScalingMath.Decide(new ScalingInputs(400, 0, 0, 0, 4, 1000, 500)).Active);
        Assert.True(ScalingMath.Decide(new ScalingInputs(0, 0, RunningSequences: 1, 1, 4, 1000, 500)).Active);
    }

    [Fact]
    public void ToInt64_RoundsUp()
    {
        Assert.Equal(3, ScalingMath.ToInt64(2.01));
        Assert.Equal(1, ScalingMath.ToInt64(0.2));
        Assert.Equal(0, ScalingMath.ToInt64(0));
        Assert.Equal(0, ScalingMath.ToInt64(double.NaN));
    }

    [Fact]
    public void TokenEstimator_ChatJob_CharsOverFourPlusMaxTokens()
    {
        // 40 + 20 characters -> 15 tokens, plus max_completion_tokens 50 (it wins over max_tokens).
        var job = """{"id":"j1","request":{"model":"m","messages":[{"role":"system","content":"0123456789012345678901234567890123456789"},{"role":"user","content":[{"type":"text","text":"01234567890123456789"}]}],"max_tokens":9,"max_completion_tokens":50}}""";
        Assert.Equal(65, TokenEstimator.EstimateMessage(Encoding.UTF8.GetBytes(job), 100));
    }

    [Fact]
    public void TokenEstimator_CompletionsJob_DefaultMaxTokensAndN_Base64()
    {
        var job = """{"id":"j2","request":{"prompt":"abcdefgh","n":2}}""";
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(job));
        Assert.Equal(2 + (2 * 100), TokenEstimator.EstimateMessage(Encoding.UTF8.GetBytes(base64), 100));
    }

    [Fact]
    public void TokenEstimator_UnknownBody_PricedBySize()
    {
        Assert.Equal(4 + 100, TokenEstimator.EstimateMessage("not json at all"u8, 100)); // 15 characters
    }

    [Theory]
    [InlineData("app=kiln", true)]
    [InlineData("app==kiln,tier", true)]
    [InlineData("app=kiln,tier!=cpu", true)]
    [InlineData("app=kiln,tier!=gpu", false)]
    [InlineData("!canary", true)]
    [InlineData("app,!tier", false)]
    [InlineData("app=other", false)]
    public void LabelSelector_Matches(string selector, bool expected)
    {
        var labels = new Dictionary<string, string> { ["app"] = "kiln", ["tier"] = "gpu" };
        Assert.Equal(expected, LabelSelector.Parse(selector).Matches(labels));
    }

    [Theory]
    [InlineData("app in (a,b)")]
    [InlineData("app=kiln,,x")]
    [InlineData("a b=c")]
    public void LabelSelector_RejectsWhatItCannotMatch(string selector) =>
        Assert.Throws<FormatException>(() => LabelSelector.Parse(selector));

    [Fact]
    public void Metadata_DefaultsAndOptionalKeys()
    {
        var md = ScalerMetadata.Parse("so", "ns", new Dictionary<string, string>
        {
            ["queueName"] = "jobs",
            ["connectionFromEnv"] = "UseDevelopmentStorage=true",
            ["tpSize"] = "4",
            ["targetBacklogPerReplica"] = "2048.5",
            ["podSelector"] = "app=k",
        });
        Assert.Equal("ns", md.PodNamespace);
        Assert.Equal("nvidia.com/gpu", md.GpuResourceName);
        Assert.Equal(4, md.TpSize);
        Assert.Equal(2048.5, md.TargetBacklogPerReplica);
        Assert.Equal(0, md.ActivationThreshold);
        Assert.Equal("/api/stats", md.PodStatsPath);
    }
}
