using Grpc.Core;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Sources;

namespace Kiln.Tests.Scaler;

/// <summary>Every RPC through a real gRPC client; the queue is faked here (the Azurite tests read a real one).</summary>
public sealed class ExternalScalerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GetMetricSpec_TargetFloatAndRoundedInt64()
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        var spec = (await h.Client.GetMetricSpecAsync(h.Ref(overrides: ("targetBacklogPerReplica", "1500.5")), cancellationToken: Ct)).MetricSpecs.Single();
        Assert.Equal("token-backlog", spec.MetricName);
        Assert.Equal(1500.5, spec.TargetSizeFloat);
#pragma warning disable CS0612
        Assert.Equal(1501, spec.TargetSize);
#pragma warning restore CS0612
    }

    [Fact]
    public async Task StreamMetricSpec_IsUnimplemented()
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        using var call = h.Client.StreamMetricSpec(h.Ref(), cancellationToken: Ct);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Ct));
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Theory]
    [InlineData("queueName", null)]
    [InlineData("connectionFromEnv", null)]
    [InlineData("connectionFromEnv", "KILN_TEST_NO_SUCH_VARIABLE")]
    [InlineData("tpSize", "two")]
    [InlineData("tpSize", "0")]
    [InlineData("tpSize", "1.5")]
    [InlineData("targetBacklogPerReplica", null)]
    [InlineData("targetBacklogPerReplica", "-5")]
    [InlineData("activationThreshold", "lots")]
    [InlineData("podSelector", null)]
    [InlineData("podSelector", "app in (a,b)")]
    [InlineData("podStatsPort", "70000")]
    [InlineData("podStatsPath", "api/stats")]
    [InlineData("stalenessSeconds", "NaN")]
    public async Task BadMetadata_InvalidArgumentNamingTheKey(string key, string? value)
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        var r = h.Ref(overrides: (key, value));
        var calls = new List<Func<Task>>
        {
            async () => await h.Client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = r, MetricName = "token-backlog" }, cancellationToken: Ct),
            async () => await h.Client.IsActiveAsync(r, cancellationToken: Ct),
            async () =>
            {
                using var s = h.Client.StreamIsActive(r, deadline: DateTime.UtcNow.AddSeconds(20), cancellationToken: Ct);
                await s.ResponseStream.MoveNext(Ct);
            },
        };
        if (key != "connectionFromEnv")
        {
            calls.Add(async () => await h.Client.GetMetricSpecAsync(r, cancellationToken: Ct)); // the spec needs no storage
        }

        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains($"'{key}'", e.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TpGroups_MetricCappedAtCurrentPlusFree_AndReported()
    {
        var queue = new FakeQueueSource { Sample = new QueueSample(100, 32, 1000) }; // 100,000 tokens: 100 replicas' worth
        await using var h = await ScalerHarness.StartAsync(queue: queue);
        h.Kube.Nodes.AddRange([
            FakeKubernetesApi.Node("gpu-a", 8),                       // 8 - 2 (ours) - 3 (other) = 3 free -> 1 group of 2
            FakeKubernetesApi.Node("gpu-b", 8),                       // 8 free -> 4 groups
            FakeKubernetesApi.Node("gpu-c", 8, unschedulable: true),  // cordoned: none
            FakeKubernetesApi.Node("gpu-d", 8, ready: false),         // NotReady: none
            FakeKubernetesApi.Node("cpu-e", 0)]);
        h.Kube.Pods.AddRange([
            FakeKubernetesApi.Pod("kiln", "llama-1", "gpu-a", 2, ip: FakePodStats.Ips[0], labels: ScalerHarness.AppLabels),
            FakeKubernetesApi.Pod("other", "trainer", "gpu-a", 3),
            FakeKubernetesApi.Pod("other", "queued", null, 2, phase: "Pending")]); // will take one of gpu-b's groups
        h.Stats.ByIp[FakePodStats.Ips[0]] = new PodStatsDocument { RunningSequences = 4, TokenBacklog = 3000 };

        var r = h.Ref();
        // allowed = 1 current + (1 + 4 - 1) free = 5 replicas -> metric 5 * 1000.
        var metric = await h.MetricAsync(r);
        Assert.Equal(5000, metric);
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        var scrape = await h.ScrapeAsync();
        Assert.Contains("kiln_scaler_capacity_exhausted{scaledobject=\"kiln/llama\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("kiln_scaler_wanted_replicas{scaledobject=\"kiln/llama\"} 103", scrape, StringComparison.Ordinal);
        Assert.Contains("kiln_scaler_allowed_replicas{scaledobject=\"kiln/llama\"} 5", scrape, StringComparison.Ordinal);

        // Capacity frees up: the cap lifts to the whole backlog.
        lock (h.Kube.Nodes)
        {
            h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-f", 400));
        }

        Assert.Equal(103_000, await h.MetricAsync(r));
        Assert.Contains("kiln_scaler_capacity_exhausted{scaledobject=\"kiln/llama\"} 0", await h.ScrapeAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScaleToZero_ActiveWhilePodsStillRun_ThenInactive()
    {
        var queue = new FakeQueueSource();
        await using var h = await ScalerHarness.StartAsync(queue: queue);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        h.Kube.Pods.AddRange([
            FakeKubernetesApi.Pod("kiln", "llama-1", "gpu-a", 2, ip: FakePodStats.Ips[0], labels: ScalerHarness.AppLabels),
            FakeKubernetesApi.Pod("kiln", "llama-2", "gpu-a", 2, ip: FakePodStats.Ips[1], labels: ScalerHarness.AppLabels),
            FakeKubernetesApi.Pod("kiln", "llama-old", "gpu-a", 2, ip: FakePodStats.Ips[2], labels: ScalerHarness.AppLabels, terminating: true),
            FakeKubernetesApi.Pod("kiln", "other-app", "gpu-a", 0, ip: "127.0.0.99", labels: new() { ["app"] = "other" })]);
        h.Stats.ByIp[FakePodStats.Ips[0]] = new PodStatsDocument { RunningSequences = 1, PendingPromptTokens = 0, PendingDecodeTokens = 40 };
        h.Stats.ByIp[FakePodStats.Ips[1]] = new PodStatsDocument();
        var r = h.Ref();

        // The queue is empty, but a pod still generates: active, metric = the pods' backlog.
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        Assert.Equal(40, await h.MetricAsync(r));

        // It finishes: inactive, metric 0, so KEDA scales to zero after the cooldown.
        h.Stats.ByIp[FakePodStats.Ips[0]] = new PodStatsDocument();
        Assert.False((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        var value = (await h.Client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = r, MetricName = "token-backlog" }, cancellationToken: Ct)).MetricValues.Single();
        Assert.Equal(0, value.MetricValueFloat);
#pragma warning disable CS0612
        Assert.Equal(0, value.MetricValue_);
#pragma warning restore CS0612

        // Work below the activation threshold does not wake it; above it does, and the int64 value rounds up.
        queue.Sample = new QueueSample(3, 3, 100.5);
        Assert.False((await h.Client.IsActiveAsync(h.Ref(overrides: ("activationThreshold", "500")), cancellationToken: Ct)).Result);
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        value = (await h.Client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = r, MetricName = "token-backlog" }, cancellationToken: Ct)).MetricValues.Single();
        Assert.Equal(301.5, value.MetricValueFloat);
#pragma warning disable CS0612
        Assert.Equal(302, value.MetricValue_);
#pragma warning restore CS0612
    }
}
