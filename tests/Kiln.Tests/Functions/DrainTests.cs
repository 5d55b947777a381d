using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Kiln.Functions.Hosting;
using Kiln.Functions.Jobs;
using Kiln.Tests.Infrastructure;
using Kiln.Tests.Reference;
using Microsoft.Extensions.DependencyInjection;

namespace Kiln.Tests.Functions;

/// <summary>
/// Scale-down loses nothing: the real app process (standalone, polling a real Azurite queue) gets SIGTERM while a
/// stream runs and queue jobs wait, and must drain: refuse new work with 503 draining, finish what runs, hand the
/// unstarted jobs back to the queue at once, and exit 0. A second process then takes the returned jobs, and no job
/// ends with two results.
/// </summary>
public sealed class DrainTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>, IDisposable
{
    private const int Jobs = 6;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);
    private readonly TempGguf _model = new(KilnServerFixture.ModelOptions);
    private readonly string _queue = "drain-" + Guid.NewGuid().ToString("N")[..12];
    private readonly string _container = "drained-" + Guid.NewGuid().ToString("N")[..12];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SigTerm_FinishesRunningWork_ReturnsUnstartedJobsAtOnce_AndExitsZero_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;
        var queue = new QueueClient(connection, _queue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None });
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        var container = new BlobContainerClient(connection, _container);

        await using var app = await StartAsync(connection, drainSeconds: 60);
        await WaitUntilAsync(
            async () =>
            {
                using var ready = await app.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
                return ready.StatusCode == HttpStatusCode.OK;
            },
            "the model to load",
            app);

        // The long stream first, so it holds one of the two sequence slots (HTTP runs before jobs anyway).
        using var streamRequest = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = JsonContent.Create(LongStream()) };
        using var stream = await app.Http.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        var streamRead = Sse.ReadAllAsync(stream);

        for (int i = 0; i < Jobs; i++)
        {
            await queue.SendMessageAsync(Job($"job-{i}"), Ct);
        }

        // Every message received (none visible), one job started (its first token, with the stream's: two), some waiting.
        string seen = "";
        await WaitUntilAsync(
            async () =>
            {
                int visibleJobs = (await queue.PeekMessagesAsync(32, Ct)).Value.Length;
                double firstTokens = await MetricAsync(app, "vllm:time_to_first_token_seconds_count{model_name=\"model.gguf\"}");
                int waiting = (await StatsAsync(app)).GetProperty("waitingRequests").GetInt32();
                seen = $"last seen: {visibleJobs} visible, {firstTokens} first tokens, {waiting} waiting";
                return visibleJobs == 0 && firstTokens >= 2 && waiting >= 1;
            },
            () => $"the jobs to be received, one started and some waiting ({seen})",
            app);
        Assert.False(streamRead.IsCompleted, "the stream must still be running when the pod is told to stop");
        int startedJobs = (int)await MetricAsync(app, "vllm:time_to_first_token_seconds_count{model_name=\"model.gguf\"}") - 1; // all but the stream

        await app.TerminateAsync(Ct);

        // Ready turns 503 draining as soon as the signal is handled, with nothing in between.
        await WaitUntilAsync(
            async () =>
            {
                using var ready = await app.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
                var status = (await ready.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("status").GetString();
                Assert.True(ready.StatusCode == HttpStatusCode.OK ? status == "ready" : ready.StatusCode == HttpStatusCode.ServiceUnavailable && status == "draining", $"{ready.StatusCode} {status}");
                return status == "draining";
            },
            "ready to answer 503 draining",
            app,
            TimeSpan.FromSeconds(10));
        Assert.Equal("draining", (await StatsAsync(app)).GetProperty("state").GetString());

        using (var refused = await app.Http.PostAsJsonAsync("v1/chat/completions", ShortChat(), Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
            var error = (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.Equal("draining", error.GetProperty("code").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        }

        // The running stream ends as it would have: every token, its finish_reason, [DONE].
        var (chunks, sawDone) = await streamRead.WaitAsync(Deadline, Ct);
        Assert.True(sawDone, "the stream ended without [DONE]");
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        Assert.Equal(0, await app.WaitForExitAsync(TimeSpan.FromSeconds(90), Ct));
        TestContext.Current.TestOutputHelper?.WriteLine(app.Output);

        // None lost: each job has its result or is back in the queue, visible now (the lease and the failure
        // visibilityTimeout are 10 minutes, so only an explicit return shows it), and no message is still held.
        var results = await ResultsAsync(container);
        var visible = (await queue.PeekMessagesAsync(32, Ct)).Value.Select(m => IdOf(m.Body.ToString())).ToList();
        Assert.Equal(visible.Count, (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
        Assert.Equal(visible.Count, visible.Distinct(StringComparer.Ordinal).Count());
        Assert.Empty(results.Keys.Intersect(visible, StringComparer.Ordinal));
        Assert.Equal(Enumerable.Range(0, Jobs).Select(i => $"job-{i}").Order(StringComparer.Ordinal), results.Keys.Concat(visible).Order(StringComparer.Ordinal));
        Assert.True(results.Count >= startedJobs, $"{results.Count} results, but {startedJobs} jobs had started before the signal"); // they finished
        Assert.NotEmpty(visible); // the waiting ones were returned
        await AssertResponsesAsync(container, results.Keys);

        // None twice: a second pod takes the returned jobs, plus a duplicate of a finished one, and overwrites nothing.
        string finished = results.Keys.First();
        await queue.SendMessageAsync(Job(finished), Ct);
        await using (var second = await StartAsync(connection, drainSeconds: 60))
        {
            await WaitUntilAsync(async () => (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount == 0 && (await ResultsAsync(container)).Count == Jobs, "the second pod to finish every job", second);
            await second.TerminateAsync(Ct);
            Assert.Equal(0, await second.WaitForExitAsync(TimeSpan.FromSeconds(90), Ct));
        }

        var after = await ResultsAsync(container);
        Assert.Equal(Jobs, after.Count);
        Assert.All(results, r => Assert.Equal(r.Value, after[r.Key])); // the first pod's results are untouched
        await AssertResponsesAsync(container, after.Keys);
    }

    [Fact]
    public async Task JobRefusedWhileDraining_LeavesNoResult_EvenOnItsLastAttempt_NeedsAzurite()
    {
        // In-process: the runner as the host's queue trigger calls it, on a pod that has begun to drain.
        string connection = azurite.ConnectionString;
        await using var server = await KilnServer.StartAsync(
            _model.Path, [$"AzureWebJobsStorage={connection}", $"Kiln:JobQueue={_queue}", $"Kiln:ResultContainer={_container}"]);
        await server.WaitUntilLoadedAsync();
        var runner = server.Services.GetRequiredService<JobRunner>();
        server.Services.GetRequiredService<ShutdownDrain>().Begin();

        var thrown = await Assert.ThrowsAsync<TransientJobException>(() => runner.RunAsync(Job("last-try"), "message-1", runner.Options.MaxDequeueCount, Ct));
        Assert.Empty(await ResultsAsync(new BlobContainerClient(connection, _container))); // a later delivery can still run it
        Assert.Contains("draining", thrown.Message, StringComparison.Ordinal);
    }

    private Task<AppProcess> StartAsync(string connection, int drainSeconds) => AppProcess.StartAsync(
        [
            $"Kiln:Model={_model.Path}",
            "Kiln:KvCacheBytes=33554432",
            "Kiln:Threads=2",
            "Kiln:MaxSequences=2", // the stream and one job run; the other jobs wait in the engine
            $"Kiln:DrainTimeoutSeconds={drainSeconds.ToString(CultureInfo.InvariantCulture)}",
            $"Kiln:JobQueue={_queue}",
            $"Kiln:ResultContainer={_container}",
            $"AzureWebJobsStorage={connection}",
            "AzureFunctionsJobHost:extensions:queues:batchSize=8", // every job in one receive
            "AzureFunctionsJobHost:extensions:queues:visibilityTimeout=00:10:00", // a failure's return would not show
            "AzureFunctionsJobHost:extensions:queues:maxPollingInterval=00:00:00.2",
        ],
        Ct);

    /// <summary>Result blob name (without .json) to its ETag.</summary>
    private static async Task<Dictionary<string, ETag>> ResultsAsync(BlobContainerClient container)
    {
        var results = new Dictionary<string, ETag>(StringComparer.Ordinal);
        if (!await container.ExistsAsync(Ct))
        {
            return results;
        }

        await foreach (var blob in container.GetBlobsAsync(cancellationToken: Ct))
        {
            results.Add(Path.GetFileNameWithoutExtension(blob.Name), blob.Properties.ETag!.Value);
        }

        return results;
    }

    private static async Task AssertResponsesAsync(BlobContainerClient container, IEnumerable<string> ids)
    {
        foreach (string id in ids)
        {
            var content = (await container.GetBlobClient(id + ".json").DownloadContentAsync(Ct)).Value.Content;
            using var result = JsonDocument.Parse(content.ToMemory());
            Assert.True(result.RootElement.TryGetProperty("response", out var response), $"{id}: {result.RootElement}");
            Assert.Equal("length", response.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        }
    }

    private static async Task<JsonElement> StatsAsync(AppProcess app) =>
        await app.Http.GetFromJsonAsync<JsonElement>(new Uri("stats", UriKind.Relative), Ct);

    private static async Task<double> MetricAsync(AppProcess app, string series)
    {
        string text = await app.Http.GetStringAsync(new Uri("metrics", UriKind.Relative), Ct);
        string? line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, string what, AppProcess app, TimeSpan? within = null) =>
        WaitUntilAsync(condition, () => what, app, within);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, Func<string> what, AppProcess app, TimeSpan? within = null)
    {
        var until = DateTime.UtcNow + (within ?? Deadline);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"timed out waiting for {what()}; the app printed:\n{app.Output}");
            await Task.Delay(20, Ct);
        }
    }

    private static string IdOf(string job) => JsonDocument.Parse(job).RootElement.GetProperty("id").GetString()!;

    /// <summary>A few hundred tokens: long enough to be running at the signal, short enough to drain in seconds.</summary>
    private static string Job(string id) =>
        $$$"""{"id": "{{{id}}}", "request": {"model": "{{{KilnServerFixture.ModelId}}}", "prompt": "once upon", "max_tokens": 300, "ignore_eos": true, "temperature": 0}}""";

    private static object LongStream() => new
    {
        model = KilnServerFixture.ModelId,
        messages = new[] { new { role = "user", content = "tell me a long story" } },
        max_tokens = 1500,
        ignore_eos = true,
        temperature = 0,
        stream = true,
    };

    private static object ShortChat() => new { model = KilnServerFixture.ModelId, messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2 };

    public void Dispose() => _model.Dispose();
}
