using System.ClientModel;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using OpenAI.Chat;

namespace Kiln.LocalCluster;

/// <summary>What a burst of queue jobs did: how far it scaled and what became of every job.</summary>
public sealed record BurstFigures(int Jobs, IReadOnlyDictionary<string, int> ResultsPerJob, int PoisonMessages, int MaxReplicas, int MaxRunningPods, TimeSpan Elapsed)
{
    public override string ToString() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"{Jobs} jobs: {ResultsPerJob.Count} with a result, {PoisonMessages} poisoned, in {Elapsed.TotalSeconds:F1} s; replicas at most {MaxReplicas}, pods running at most {MaxRunningPods}");
}

/// <summary>What became of the HTTP calls in flight while a pod was stopped.</summary>
public sealed record StopFigures(int Calls, int Completed, IReadOnlyList<string> Refused, IReadOnlyList<string> Failed, int? StoppedPodExitCode)
{
    public override string ToString() =>
        $"{Calls} streamed calls: {Completed} completed, {Refused.Count} refused, {Failed.Count} failed{string.Concat(Refused.Concat(Failed).Select(o => "\n  " + o))}; the stopped pod exited {StoppedPodExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(unknown)"}";
}

/// <summary>The load scenarios, shared by the demo command and the end-to-end tests.</summary>
public static class LoadScenarios
{
    public const string ResultContainer = "kiln-results";

    /// <summary>Queues <paramref name="jobs"/> chat jobs (ids <c>{prefix}-{i}</c>).</summary>
    public static async Task EnqueueAsync(LoopbackCluster cluster, string prefix, int jobs, int maxTokens, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var queue = new QueueClient(cluster.Storage.ConnectionString, cluster.JobQueue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None });
        await queue.CreateIfNotExistsAsync(cancellationToken: ct);
        for (var i = 0; i < jobs; i++)
        {
            var job = new JsonObject
            {
                ["id"] = $"{prefix}-{i}",
                ["request"] = new JsonObject
                {
                    ["model"] = "kiln-demo",
                    ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"Tell me about the number {i}." }),
                    ["max_tokens"] = maxTokens,
                    ["temperature"] = 0,
                },
            };
            await queue.SendMessageAsync(job.ToJsonString(), ct);
        }
    }

    /// <summary>Queues a burst and waits until every job has a result (or the bound passes).</summary>
    public static async Task<BurstFigures> QueueBurstAsync(LoopbackCluster cluster, int jobs, int maxTokens, TimeSpan bound, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var maxReplicas = 0;
        void Track(ClusterEvent _) => maxReplicas = Math.Max(maxReplicas, cluster.Kubernetes.Replicas);
        cluster.Events.Added += Track;
        var start = DateTimeOffset.UtcNow;
        try
        {
            await EnqueueAsync(cluster, "burst", jobs, maxTokens, ct);
            var results = new BlobContainerClient(cluster.Storage.ConnectionString, ResultContainer);
            await WaitUntilAsync(async () => (await ResultsAsync(results, ct)).Count >= jobs, bound, cluster, ct);
            var perJob = await ResultsAsync(results, ct);
            return new BurstFigures(jobs, perJob, await PoisonCountAsync(cluster, ct), maxReplicas, cluster.Kubernetes.MaxRunningPods, DateTimeOffset.UtcNow - start);
        }
        finally
        {
            cluster.Events.Added -= Track;
        }
    }

    /// <summary>
    /// With <paramref name="calls"/> streamed chat calls in flight through the gateway (and queue jobs behind them),
    /// deletes one ready pod as <c>kubectl delete pod</c> would; every call must end answered or refused clearly.
    /// </summary>
    public static async Task<StopFigures> StopPodMidLoadAsync(LoopbackCluster cluster, int calls, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var chat = Scenarios.Client(cluster).GetChatClient("kiln-demo");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var streaming = 0;
        var outcomes = Enumerable.Range(0, calls).Select(async i =>
        {
            try
            {
                ChatFinishReason? finish = null;
                await foreach (var update in chat.CompleteChatStreamingAsync(
                    [new UserChatMessage($"Call {i}: once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 48, Temperature = 0 }, ct))
                {
                    if (update.ContentUpdate.Count > 0 && Interlocked.Increment(ref streaming) == Math.Max(1, calls / 2))
                    {
                        started.TrySetResult();
                    }

                    finish ??= update.FinishReason;
                }

                return finish is null ? $"failed: call {i} ended without a finish reason" : "completed";
            }
            catch (ClientResultException e) when (e.Status is 429 or 503)
            {
                return $"refused: {e.Status} {e.Message}";
            }
            catch (Exception e) when (e is ClientResultException or IOException or HttpRequestException)
            {
                return $"failed: {e.GetType().Name}: {e.Message}";
            }
        }).ToList();

        await started.Task.WaitAsync(TimeSpan.FromMinutes(3), ct);
        var victim = cluster.Kubernetes.Pods.Where(p => p.Ready && p.DeletionTimestamp is null).OrderBy(p => p.Created).First();
        var stopping = cluster.Kubernetes.DeleteAsync(victim, "stopped mid-load");
        var done = await Task.WhenAll(outcomes);
        await stopping;
        return new StopFigures(
            calls, done.Count(o => o == "completed"), [.. done.Where(o => o.StartsWith("refused", StringComparison.Ordinal))],
            [.. done.Where(o => o.StartsWith("failed", StringComparison.Ordinal))], victim.ExitCode);
    }

    /// <summary>Waits for the deployment to return to zero, every pod gone; the time it took.</summary>
    public static async Task<TimeSpan> IdleToZeroAsync(LoopbackCluster cluster, TimeSpan bound, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var start = DateTimeOffset.UtcNow;
        await WaitUntilAsync(() => Task.FromResult(cluster.Kubernetes.Replicas == 0 && cluster.Kubernetes.Pods.Count == 0), bound, cluster, ct);
        return DateTimeOffset.UtcNow - start;
    }

    /// <summary>Result blobs per job id (a second result for one job would show as a count above one).</summary>
    public static async Task<Dictionary<string, int>> ResultsAsync(BlobContainerClient results, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(results);
        var perJob = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!await results.ExistsAsync(ct))
        {
            return perJob;
        }

        await foreach (var blob in results.GetBlobsAsync(cancellationToken: ct))
        {
            var id = blob.Name.EndsWith(".json", StringComparison.Ordinal) ? blob.Name[..^5] : blob.Name;
            perJob[id] = perJob.GetValueOrDefault(id) + 1;
        }

        return perJob;
    }

    private static async Task<int> PoisonCountAsync(LoopbackCluster cluster, CancellationToken ct)
    {
        var poison = new QueueClient(cluster.Storage.ConnectionString, cluster.JobQueue + "-poison");
        return await poison.ExistsAsync(ct) ? (await poison.GetPropertiesAsync(ct)).Value.ApproximateMessagesCount : 0;
    }

    /// <summary>Polls a condition (the loop's state lives in other processes) until it holds or the bound passes.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan bound, LoopbackCluster cluster, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(cluster);
        var deadline = DateTimeOffset.UtcNow + bound;
        while (!await condition())
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"not within {bound}:\n{cluster.Events}");
            }

            await Task.Delay(200, ct);
        }
    }
}
