using System.Text.Json.Nodes;
using Kiln.Gateway;
using Kiln.Tests.Scaler;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>Pods come from the Kubernetes API (the loopback stand-in): only ready, live, matching pods with an IP.</summary>
public sealed class DiscoveryTests
{
    private static readonly Dictionary<string, string> App = new() { ["app"] = "kiln-llama" };

    [Fact]
    public async Task DiscoveryAddsReadyMatchingPodsAndDropsThoseThatStopBeingReady()
    {
        await using var pod = await FakePod.StartAsync("p");
        await using var k8s = await FakeKubernetesApi.StartAsync();
        lock (k8s.Pods)
        {
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "good", "n", 1, ip: "127.0.0.1", labels: App));
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "other-app", "n", 1, ip: "127.0.0.1", labels: new() { ["app"] = "other" }));
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "not-ready", "n", 1, ip: "127.0.0.1", ready: false, labels: App));
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "terminating", "n", 1, ip: "127.0.0.1", labels: App, terminating: true));
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "no-ip", null, 1, phase: "Pending", labels: App));
            k8s.Pods.Add(FakeKubernetesApi.Pod("elsewhere", "other-namespace", "n", 1, ip: "127.0.0.1", labels: App));
        }

        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            Namespace = "kiln",
            PodSelector = "app=kiln-llama",
            KubernetesBaseUrl = k8s.BaseUrl.ToString(),
            PodPort = pod.BaseUrl.Port,
            DiscoveryIntervalMs = 50,
        }, cancellationToken: Ct);
        using var http = Client(gateway);

        await UntilAsync(async () => Names(await StatsAsync(http)) == "good", "only the good pod is listed");
        var good = (await StatsAsync(http))["pods"]![0]!;
        Assert.Equal($"http://127.0.0.1:{pod.BaseUrl.Port}", (string?)good["address"]);
        await UntilPodsReadyAsync(http, 1); // its engine is read as ready
        Assert.Contains(k8s.Requests, r => r.StartsWith("/api/v1/namespaces/kiln/pods?", StringComparison.Ordinal) && r.Contains("resourceVersion=0", StringComparison.Ordinal) && r.Contains("labelSelector=app%3Dkiln-llama", StringComparison.Ordinal));

        lock (k8s.Pods)
        {
            k8s.Pods.RemoveAll(p => (string?)p["metadata"]!["name"] == "good");
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "good", "n", 1, ip: "127.0.0.1", ready: false, labels: App));
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "newcomer", "n", 1, ip: "127.0.0.1", labels: App));
        }

        await UntilAsync(async () => Names(await StatsAsync(http)) == "newcomer", "the unready pod is dropped and the new one added");
    }

    [Fact]
    public async Task AFailingApiServer_KeepsTheLastKnownPods()
    {
        await using var pod = await FakePod.StartAsync("p");
        await using var k8s = await FakeKubernetesApi.StartAsync();
        lock (k8s.Pods)
        {
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "good", "n", 1, ip: "127.0.0.1", labels: App));
        }

        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            Namespace = "kiln",
            PodSelector = "app=kiln-llama",
            KubernetesBaseUrl = k8s.BaseUrl.ToString(),
            PodPort = pod.BaseUrl.Port,
            DiscoveryIntervalMs = 50,
        }, cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilAsync(async () => Names(await StatsAsync(http)) == "good", "the pod is listed");

        k8s.FailWith = 500;
        var failures = k8s.Requests.Count;
        await UntilAsync(() => Task.FromResult(k8s.Requests.Count >= failures + 3), "three failed listings");
        Assert.Equal("good", Names(await StatsAsync(http)));
    }

    private static string Names(JsonObject stats) => string.Join(",", stats["pods"]!.AsArray().Select(p => (string)p!["name"]!));
}
