using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Kiln.LocalCluster;

namespace Kiln.Tests.Cluster;

/// <summary>
/// The whole loop on loopback (deploy/local): Azurite, the scaler, stand-ins for KEDA with its HPA and for the
/// Kubernetes API whose pods are real app processes on the demo model. Slow by nature (pods start as processes):
/// each test is one scenario of the issue's, end to end.
/// </summary>
public sealed class ScaleToZeroLoopTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<LoopbackCluster> StartAsync(LoopbackClusterOptions options)
    {
        try
        {
            return await LocalCluster.LoopbackCluster.StartAsync(options, Ct);
        }
        catch (AzuriteUnavailableException e)
        {
            Assert.Skip($"Azurite unavailable: {e.Message}");
            throw;
        }
    }

    [Fact]
    public async Task QueueBurst_ScalesOutToTheFreeTpGroupsOnly_EveryJobOneResult_ThenBackToZero_NeedsAzurite()
    {
        // 4 + 2 GPUs at TP 2: three groups. The burst wants far more replicas than that.
        var options = new LoopbackClusterOptions
        {
            Nodes = [new("gpu-a", 4), new("gpu-b", 2)],
            TpSize = 2,
            TargetBacklogPerReplica = 256,
            AppSettings = ["Kiln:MaxSequences=4"],
        };
        await using var cluster = await StartAsync(options);
        var maxReplicas = 0;
        cluster.Events.Added += _ => maxReplicas = Math.Max(maxReplicas, cluster.Kubernetes.Replicas);

        var queue = new QueueClient(cluster.Storage.ConnectionString, cluster.JobQueue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None });
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        const int Jobs = 30;
        for (var i = 0; i < Jobs; i++)
        {
            var job = new JsonObject
            {
                ["id"] = $"job-{i}",
                ["request"] = new JsonObject
                {
                    ["model"] = "kiln-demo",
                    ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"Tell me about the number {i}." }),
                    ["max_tokens"] = 64,
                    ["temperature"] = 0,
                },
            };
            await queue.SendMessageAsync(job.ToJsonString(), Ct);
        }

        var results = new BlobContainerClient(cluster.Storage.ConnectionString, "kiln-results");
        await WaitUntilAsync(async () => (await CountAsync(results)) >= Jobs, TimeSpan.FromMinutes(6), cluster);

        // Scaled out, but never past the free TP groups: no pod was ever left Pending for want of GPUs.
        Assert.Equal(3, cluster.Kubernetes.MaxRunningPods);
        Assert.True(maxReplicas <= 3, $"replicas reached {maxReplicas}\n{cluster.Events}");

        // Every job has exactly one result, and a response in it.
        var names = new List<string>();
        await foreach (var blob in results.GetBlobsAsync(cancellationToken: Ct))
        {
            names.Add(blob.Name);
        }

        Assert.Equal(Enumerable.Range(0, Jobs).Select(i => $"job-{i}.json").Order(StringComparer.Ordinal), names.Order(StringComparer.Ordinal));
        foreach (var name in names)
        {
            var body = JsonNode.Parse((await results.GetBlobClient(name).DownloadContentAsync(Ct)).Value.Content.ToString())!;
            Assert.NotNull(body["response"]);
        }

        var poison = new QueueClient(cluster.Storage.ConnectionString, cluster.JobQueue + "-poison");
        Assert.False(await poison.ExistsAsync(Ct) && (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0);

        // Idle: back to zero after the cooldown, every pod gone.
        var idleSince = DateTimeOffset.UtcNow;
        await WaitUntilAsync(() => Task.FromResult(cluster.Kubernetes.Replicas == 0 && cluster.Kubernetes.Pods.Count == 0), TimeSpan.FromMinutes(2), cluster);
        TestContext.Current.TestOutputHelper?.WriteLine(cluster.Events.ToString());
        var toZero = cluster.Events.All.Last(e => e.Kind == "scale" && e.Detail.StartsWith("1 -> 0", StringComparison.Ordinal) || e.Detail.Contains("-> 0 (KEDA", StringComparison.Ordinal));
        Assert.Contains("cooldown", toZero.Detail, StringComparison.Ordinal);
        Assert.True(toZero.At - idleSince >= TimeSpan.Zero);
    }

    private static async Task<int> CountAsync(BlobContainerClient container)
    {
        if (!await container.ExistsAsync(Ct))
        {
            return 0;
        }

        var n = 0;
        await foreach (var _ in container.GetBlobsAsync(cancellationToken: Ct))
        {
            n++;
        }

        return n;
    }

    /// <summary>Polls a condition (the loop's state lives in other processes) until it holds or the bound passes.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan bound, LoopbackCluster cluster)
    {
        var deadline = DateTimeOffset.UtcNow + bound;
        while (!await condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, $"not within {bound}:\n{cluster.Events}");
            await Task.Delay(200, Ct);
        }
    }
}
