using Grpc.Core;
using k8s;
using Kiln.Scaler.Scaling;
using Kiln.Scaler.Sources;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Kiln.Tests.Scaler;

/// <summary>The Kubernetes client code against a loopback API server answering in the real JSON shapes.</summary>
public sealed class KubernetesSourceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ReadsNodesAndPods_FreeGroupsAndReplicas()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Nodes.AddRange([
            FakeKubernetesApi.Node("gpu-a", 8),
            FakeKubernetesApi.Node("gpu-b", 4),
            FakeKubernetesApi.Node("amd-c", 8, resource: "amd.com/gpu")]);
        api.Pods.AddRange([
            FakeKubernetesApi.Pod("kiln", "a1", "gpu-a", 2, labels: ScalerHarness.AppLabels, ip: "10.244.1.7"),
            FakeKubernetesApi.Pod("kiln", "a2", "gpu-a", 1, labels: ScalerHarness.AppLabels, limitsOnly: true, phase: "Pending"),
            FakeKubernetesApi.Pod("kiln", "a3", "gpu-a", 0, labels: ScalerHarness.AppLabels, initGpus: 3, phase: "Pending"),
            FakeKubernetesApi.Pod("kiln", "gone", "gpu-b", 2, labels: ScalerHarness.AppLabels, terminating: true),
            FakeKubernetesApi.Pod("kiln", "done", "gpu-b", 2, phase: "Succeeded"),
            FakeKubernetesApi.Pod("batch", "x", "amd-c", 3, resource: "amd.com/gpu")]);
        var source = new KubernetesClusterSource(KubernetesClusterSource.CreateClient(api.BaseUrl.ToString(), TimeSpan.FromSeconds(5)));

        var snapshot = await source.ReadAsync(Ct);

        Assert.Equal(3, snapshot.Nodes.Count);
        Assert.Equal(5, snapshot.Pods.Count); // Succeeded dropped even if the server ignored the field selector
        // gpu-a: 8 - (2 + 1 limit-only + 3 init) = 2 -> 1 group of 2; gpu-b: 4 - 2 (terminating still holds) = 2 -> 1.
        Assert.Equal(2, snapshot.FreeGroups("nvidia.com/gpu", 2));
        Assert.Equal(0, snapshot.FreeGroups("nvidia.com/gpu", 4));
        Assert.Equal(1, snapshot.FreeGroups("amd.com/gpu", 4));
        var mine = snapshot.PodsOf("kiln", LabelSelector.Parse("app=kiln-llama")).Select(p => p.Name).Order().ToArray();
        Assert.Equal(["a1", "a2", "a3"], mine);
        Assert.Equal("10.244.1.7", snapshot.Pods.Single(p => p.Name == "a1").PodIp);
        Assert.True(snapshot.Pods.Single(p => p.Name == "a1").Ready);

        Assert.Contains(api.Requests, q => q.StartsWith("/api/v1/pods?", StringComparison.Ordinal) && q.Contains("fieldSelector=status.phase%21%3DSucceeded", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ErrorStatus_ServesLastGoodValue_ThenUnavailablePastStaleness()
    {
        var queue = new FakeQueueSource { Sample = new QueueSample(10, 10, 1000) };
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var h = await ScalerHarness.StartAsync(queue: queue, services: s => s.AddSingleton<TimeProvider>(clock));
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 4)); // 2 free groups of 2
        var r = h.Ref(overrides: ("stalenessSeconds", "1"));
        Assert.Equal(2000, await h.MetricAsync(r)); // capped at 0 + 2 groups

        h.Kube.FailWith = 500;
        Assert.Equal(2000, await h.MetricAsync(r)); // the API fails: last good snapshot, no error to KEDA
        clock.Advance(TimeSpan.FromMilliseconds(1300)); // past the 1 s staleness
        var e = await Assert.ThrowsAsync<RpcException>(() => h.MetricAsync(r));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("cluster", e.Status.Detail, StringComparison.Ordinal);

        h.Kube.FailWith = 0;
        Assert.Equal(2000, await h.MetricAsync(r)); // recovered
    }

    [Fact]
    public async Task FailingQueueSource_ServesLastGoodValue_ThenUnavailablePastStaleness()
    {
        var queue = new FakeQueueSource { Sample = new QueueSample(1, 1, 900) };
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var h = await ScalerHarness.StartAsync(queue: queue, services: s => s.AddSingleton<TimeProvider>(clock));
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 4)); // 2 free groups of 2: the cap is 2000, above the 900 queued
        var r = h.Ref(overrides: ("stalenessSeconds", "1"));
        Assert.Equal(900, await h.MetricAsync(r));

        queue.Failure = new InvalidOperationException("storage is unreachable");
        Assert.Equal(900, await h.MetricAsync(r)); // the queue fails: its last good sample
        clock.Advance(TimeSpan.FromMilliseconds(1300)); // past the 1 s staleness
        var e = await Assert.ThrowsAsync<RpcException>(() => h.MetricAsync(r));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);

        queue.Failure = null;
        queue.Sample = new QueueSample(1, 1, 400);
        Assert.Equal(400, await h.MetricAsync(r)); // recovered, and reading afresh
    }

    [Fact]
    public async Task NoValueYet_ErrorIsUnavailable()
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        h.Kube.FailWith = 403;
        var e = await Assert.ThrowsAsync<RpcException>(async () => await h.Client.IsActiveAsync(h.Ref(), cancellationToken: Ct));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }

    [Fact]
    public async Task SlowAnswer_TimesOut_ServesLastGoodValue_ThenUnavailable()
    {
        var queue = new FakeQueueSource { Sample = new QueueSample(10, 10, 1000) };
        await using var h = await ScalerHarness.StartAsync(queue: queue, configure: o => o.OutboundTimeoutMs = 300);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 4));
        var r = h.Ref(overrides: ("stalenessSeconds", "2"));
        Assert.Equal(2000, await h.FirstMetricAsync(r));

        h.Kube.Delay = TimeSpan.FromSeconds(10);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(2000, await h.MetricAsync(r));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(3)); // bounded by the 300 ms timeout

        await Task.Delay(2100, Ct);
        var e = await Assert.ThrowsAsync<RpcException>(() => h.MetricAsync(r));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("300 ms", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SilentPod_CountsAsBusy_QueueStillCounted()
    {
        var queue = new FakeQueueSource { Sample = new QueueSample(1, 1, 500) };
        await using var h = await ScalerHarness.StartAsync(queue: queue, configure: o => o.OutboundTimeoutMs = 300);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        // Its IP answers nothing on the stats port (no listener on 127.0.0.13 has stats for it: 404).
        h.Kube.Pods.Add(FakeKubernetesApi.Pod("kiln", "llama-1", "gpu-a", 2, ip: FakePodStats.Ips[2], labels: ScalerHarness.AppLabels));
        var r = h.Ref();
        Assert.Equal(500, await h.FirstMetricAsync(r));
        queue.Sample = default;
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result); // unknown pod: not scaled away blind
    }

    [Fact]
    public void KubernetesJson_ReadsTheSameShapes()
    {
        // The fixtures deserialize with the client's own serializer: the shapes are the API's.
        var node = KubernetesJson.Deserialize<k8s.Models.V1Node>(FakeKubernetesApi.Node("n", 8).ToJsonString());
        Assert.Equal(8m, node.Status.Allocatable["nvidia.com/gpu"].ToDecimal());
        var pod = KubernetesJson.Deserialize<k8s.Models.V1Pod>(FakeKubernetesApi.Pod("ns", "p", "n", 2, ip: "10.0.0.9").ToJsonString());
        Assert.Equal("10.0.0.9", pod.Status.PodIP);
        Assert.Equal(2m, pod.Spec.Containers[0].Resources.Requests["nvidia.com/gpu"].ToDecimal());
    }
}
