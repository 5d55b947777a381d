using Kiln.Scaler.Contracts;
using Kiln.Scaler.Sources;

namespace Kiln.Tests.Scaler;

/// <summary>The scaler's reads of pod stats carry Scaler:PodStatsKey as a bearer key: pods with keys refuse stats without one.</summary>
public sealed class PodStatsKeyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WithPodStatsKey_EveryReadSendsIt_AndAKeyedPodsBacklogCounts()
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource(), configure: o => o.PodStatsKey = "scaler-metrics-key");
        h.Stats.RequiredKey = "scaler-metrics-key";
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        h.Kube.Pods.Add(FakeKubernetesApi.Pod("kiln", "llama-1", "gpu-a", 2, ip: FakePodStats.Ips[0], labels: ScalerHarness.AppLabels));
        h.Stats.ByIp[FakePodStats.Ips[0]] = new PodStatsDocument { RunningSequences = 1, PendingDecodeTokens = 40 };

        Assert.Equal(40, await h.MetricAsync(h.Ref()));
        Assert.NotEmpty(h.Stats.Authorizations);
        Assert.All(h.Stats.Authorizations, a => Assert.Equal("Bearer scaler-metrics-key", a));
    }

    [Fact]
    public async Task WithoutAKey_NoHeaderIsSent()
    {
        await using var stats = await FakePodStats.StartAsync();
        stats.ByIp[FakePodStats.Ips[0]] = new PodStatsDocument { TokenBacklog = 7 };
        using var http = new HttpClient();

        var read = await new HttpPodStatsSource(http).ReadAsync(FakePodStats.Ips[0], stats.Port, "/api/stats", Ct);

        Assert.Equal(7, read.TokenBacklog);
        Assert.Equal("", Assert.Single(stats.Authorizations));
    }
}
