using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Kiln.LocalCluster;
using Kiln.Tests.Infrastructure;
using OpenAI.Chat;

namespace Kiln.Tests.Cluster;

/// <summary>
/// The whole loop on loopback (deploy/local): Azurite, the scaler, the gateway, stand-ins for KEDA with its HPA and
/// for the Kubernetes API whose pods are real app processes on the demo model, driven with the repository's own
/// ScaledObject. Slow by nature (pods start as processes): each test is one of the scenarios, end to end.
/// </summary>
public sealed class ScaleToZeroLoopTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<LoopbackCluster> StartAsync(LoopbackClusterOptions options)
    {
        try
        {
            return await LoopbackCluster.StartAsync(options, Ct);
        }
        catch (AzuriteUnavailableException e)
        {
            Prerequisite.Missing($"Azurite unavailable: {e.Message}");
            throw;
        }
    }

    private static void Log(LoopbackCluster cluster, string figures) =>
        TestContext.Current.TestOutputHelper?.WriteLine($"{figures}\n{cluster.Events}");

    [Fact]
    public async Task HttpCallAtZero_IsHeldWakesAPodAndIsStreamed_ThenBackToZeroAfterTheCooldown_NeedsAzurite()
    {
        // KEDA polls every 5 s here: a scale from zero well inside that can only come from the pushed StreamIsActive.
        var timing = new KedaTiming { PollingInterval = TimeSpan.FromSeconds(5), CooldownPeriod = TimeSpan.FromSeconds(6) };
        await using var cluster = await StartAsync(new LoopbackClusterOptions { Nodes = [new("gpu-a", 2)], TpSize = 2, Timing = timing });
        Assert.Equal(0, cluster.Kubernetes.Replicas);

        var wake = await Scenarios.ChatFromZeroAsync(cluster, Ct);
        Log(cluster, wake.ToString());
        Assert.Equal(ChatFinishReason.Length, wake.FinishReason);
        Assert.NotEmpty(wake.Text);
        Assert.Equal("KEDA: activated by StreamIsActive", wake.ActivatedBy);
        Assert.True(wake.KedaReaction < TimeSpan.FromSeconds(2.5), wake.ToString());

        // Idle: KEDA returns it to zero once the cooldown has passed since the last active report, not before.
        var answered = DateTimeOffset.UtcNow;
        await LoadScenarios.IdleToZeroAsync(cluster, TimeSpan.FromMinutes(1), Ct);
        var toZero = cluster.Events.All.Last(e => e.Kind == "scale");
        Assert.StartsWith("1 -> 0 (KEDA: inactive for the 6 s cooldown)", toZero.Detail, StringComparison.Ordinal);
        Assert.True(toZero.At - answered >= timing.CooldownPeriod - TimeSpan.FromSeconds(1), $"{toZero.At - answered}\n{cluster.Events}");
        Assert.All(cluster.Events.All.Where(e => e.Kind == "pod-gone"), e => Assert.EndsWith("exit 0", e.Detail, StringComparison.Ordinal));
    }

    [Fact]
    public async Task QueueBurst_ScalesOutToTheFreeTpGroupsOnly_EveryJobOneResult_ThenBackToZero_NeedsAzurite()
    {
        // 4 + 2 GPUs at TP 2: three groups. The burst wants far more replicas than that.
        await using var cluster = await StartAsync(new LoopbackClusterOptions
        {
            Nodes = [new("gpu-a", 4), new("gpu-b", 2)],
            TpSize = 2,
            TargetBacklogPerReplica = 256,
            AppSettings = ["Kiln:MaxSequences=4"],
        });
        var burst = await LoadScenarios.QueueBurstAsync(cluster, jobs: 30, maxTokens: 64, TimeSpan.FromMinutes(6), Ct);
        Log(cluster, burst.ToString());

        // Scaled out, but never past the free TP groups: no pod was ever left Pending for want of GPUs.
        Assert.Equal(3, burst.MaxRunningPods);
        Assert.True(burst.MaxReplicas <= 3, $"replicas reached {burst.MaxReplicas}\n{cluster.Events}");
        Assert.DoesNotContain(cluster.Events.All, e => e.Kind == "pod-pending");

        // Every job has exactly one result, with a response in it, and nothing was poisoned.
        await AssertEveryJobAnsweredAsync(cluster, "burst", 30);
        Assert.Equal(0, burst.PoisonMessages);
        await LoadScenarios.IdleToZeroAsync(cluster, TimeSpan.FromMinutes(2), Ct);
    }

    [Fact]
    public async Task PodStoppedMidLoad_EveryCallAnsweredOrRefusedClearly_EveryJobOnce_NeedsAzurite()
    {
        await using var cluster = await StartAsync(new LoopbackClusterOptions
        {
            Nodes = [new("gpu-a", 2), new("gpu-b", 2)],
            TpSize = 2,
            TargetBacklogPerReplica = 128,
            AppSettings = ["Kiln:MaxSequences=4"],
        });

        // Jobs keep both groups busy; once two pods are ready, HTTP calls stream through the gateway and one pod goes.
        await LoadScenarios.EnqueueAsync(cluster, "load", jobs: 16, maxTokens: 96, Ct);
        await LoadScenarios.WaitUntilAsync(() => Task.FromResult(cluster.Kubernetes.ReadyReplicas == 2), TimeSpan.FromMinutes(3), cluster, Ct);
        var stop = await LoadScenarios.StopPodMidLoadAsync(cluster, calls: 8, Ct);
        Log(cluster, stop.ToString());

        Assert.Empty(stop.Failed);
        Assert.Equal(stop.Calls, stop.Completed + stop.Refused.Count);
        Assert.All(stop.Refused, r => Assert.Contains("503", r, StringComparison.Ordinal));
        Assert.Equal(0, stop.StoppedPodExitCode); // it drained within its grace period, not killed

        // Every job ends with exactly one result (the stopped pod's unstarted jobs went back to the queue).
        var results = new BlobContainerClient(cluster.Storage.ConnectionString, LoadScenarios.ResultContainer);
        await LoadScenarios.WaitUntilAsync(async () => (await LoadScenarios.ResultsAsync(results, Ct)).Count >= 16, TimeSpan.FromMinutes(4), cluster, Ct);
        await AssertEveryJobAnsweredAsync(cluster, "load", 16);
    }

    /// <summary>Exactly the jobs <c>{prefix}-0..count-1</c> have result blobs, each holding a response (not an error).</summary>
    private static async Task AssertEveryJobAnsweredAsync(LoopbackCluster cluster, string prefix, int count)
    {
        var results = new BlobContainerClient(cluster.Storage.ConnectionString, LoadScenarios.ResultContainer);
        var expected = Enumerable.Range(0, count).Select(i => $"{prefix}-{i}").Order(StringComparer.Ordinal).ToList();
        var found = (await LoadScenarios.ResultsAsync(results, Ct)).Keys.Where(k => k.StartsWith(prefix + "-", StringComparison.Ordinal));
        Assert.Equal(expected, found.Order(StringComparer.Ordinal));
        foreach (var id in expected)
        {
            var body = JsonNode.Parse((await results.GetBlobClient($"{id}.json").DownloadContentAsync(Ct)).Value.Content.ToString())!;
            Assert.NotNull(body["response"]);
        }
    }
}
