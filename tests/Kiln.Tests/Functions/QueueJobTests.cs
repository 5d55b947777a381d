using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Kiln.Functions.Hosting;
using Kiln.Tests.Infrastructure;
using Kiln.Tests.Reference;
using Microsoft.Extensions.DependencyInjection;

namespace Kiln.Tests.Functions;

/// <summary>
/// Queue jobs in standalone mode against a real Azurite: the app polls the queue (AzureWebJobsStorage set) with the
/// host.json semantics, shortened through the host's own override keys so retries take a second, not thirty.
/// Each test uses its own queue and container, so the tests of the class can share one Azurite.
/// </summary>
public sealed class QueueJobTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);
    private readonly TempGguf _model = new(KilnServerFixture.ModelOptions);
    private readonly string _queue = "jobs-" + Guid.NewGuid().ToString("N")[..12];
    private readonly string _container = "results-" + Guid.NewGuid().ToString("N")[..12];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ChatAndCompletionJobs_WriteResultBlobs_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;
        await using var server = await StartAsync(connection);
        var queue = await QueueAsync(connection, _queue);
        await queue.SendMessageAsync(Job("chat-1", Chat()), Ct);
        await queue.SendMessageAsync(Job("cmpl-1", Completion()), Ct);

        using var chat = await ResultAsync(connection, "chat-1");
        using var completion = await ResultAsync(connection, "cmpl-1");
        var chatResponse = chat.RootElement.GetProperty("response");
        Assert.Equal("chat-1", chat.RootElement.GetProperty("id").GetString());
        Assert.Equal("chat.completion", chatResponse.GetProperty("object").GetString());
        Assert.Equal("assistant", chatResponse.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString());
        Assert.True(chatResponse.GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 0);
        Assert.True(chat.RootElement.GetProperty("timings").GetProperty("duration_ms").GetDouble() > 0);
        Assert.False(chat.RootElement.TryGetProperty("error", out _));

        var completionResponse = completion.RootElement.GetProperty("response");
        Assert.Equal("text_completion", completionResponse.GetProperty("object").GetString());
        Assert.Single(completionResponse.GetProperty("choices").EnumerateArray());
        await WaitEmptyAsync(queue);
    }

    [Fact]
    public async Task DuplicateMessages_RunTheJobOnce_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;
        await using var server = await StartAsync(connection);
        var queue = await QueueAsync(connection, _queue);
        string job = Job("dup-1", Completion());

        // Two deliveries at once (in flight together), then one after the result exists.
        await queue.SendMessageAsync(job, Ct);
        await queue.SendMessageAsync(job, Ct);
        using (await ResultAsync(connection, "dup-1"))
        {
        }

        await WaitEmptyAsync(queue);
        var blob = new BlobContainerClient(connection, _container).GetBlobClient("dup-1.json");
        var written = (await blob.GetPropertiesAsync(cancellationToken: Ct)).Value.LastModified;
        await queue.SendMessageAsync(job, Ct);
        await WaitEmptyAsync(queue);

        Assert.Equal(1, server.Model.Engine!.GetStats().CompletedRequests);
        Assert.Equal(written, (await blob.GetPropertiesAsync(cancellationToken: Ct)).Value.LastModified);
    }

    [Fact]
    public async Task MalformedAndInvalidJobs_RecordAnErrorAndAreNotRetried_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;
        await using var server = await StartAsync(connection);
        var queue = await QueueAsync(connection, _queue);
        var poison = await QueueAsync(connection, _queue + "-poison");
        string messageId = (await queue.SendMessageAsync("{ this is not json", Ct)).Value.MessageId;
        await queue.SendMessageAsync("""{"id": "no-request"}""", Ct);
        await queue.SendMessageAsync(Job("bad-model", """{"model": "nope", "prompt": "hi"}"""), Ct);

        foreach (var (id, code) in new[] { (messageId, "invalid_job"), ("no-request", "invalid_job"), ("bad-model", "model_not_found") })
        {
            using var result = await ResultAsync(connection, id);
            var error = result.RootElement.GetProperty("error");
            Assert.Equal(code, error.GetProperty("code").GetString());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
            Assert.False(result.RootElement.TryGetProperty("response", out _));
            Assert.Equal(1, result.RootElement.GetProperty("timings").GetProperty("dequeue_count").GetInt64()); // not retried
        }

        await WaitEmptyAsync(queue);
        Assert.Equal(0, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task FailingJob_EndsInThePoisonQueue_WithItsError_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;

        // A model that cannot load: every attempt answers 503, a transient failure, so the message is retried.
        ModelLoadFunc fail = _ => throw new InvalidOperationException("test: the model is unavailable");
        await using var server = await StartAsync(connection, b => b.Services.AddSingleton(fail));
        var queue = await QueueAsync(connection, _queue);
        var poison = await QueueAsync(connection, _queue + "-poison");
        string job = Job("fails-1", Completion());
        await queue.SendMessageAsync(job, Ct);

        await WaitUntilAsync(async () => (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0, "the message to reach the poison queue");
        var poisoned = (await poison.ReceiveMessageAsync(cancellationToken: Ct)).Value;
        Assert.Equal(job, poisoned.Body.ToString());
        await WaitEmptyAsync(queue);

        using var result = await ResultAsync(connection, "fails-1");
        var error = result.RootElement.GetProperty("error");
        Assert.Contains("the model is unavailable", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(503, result.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(3, result.RootElement.GetProperty("timings").GetProperty("dequeue_count").GetInt64()); // host.json maxDequeueCount
    }

    [Fact]
    public async Task MessageDequeuedPastTheLimitWithoutAnOutcome_IsPoisonedUnrun_NeedsAzurite()
    {
        // A process that died mid-job three times leaves a message dequeued three times with no outcome: the next
        // receive (the fourth) must move it to the poison queue without running it again, as the Functions host does.
        string connection = azurite.ConnectionString;
        var queue = await QueueAsync(connection, _queue);
        var poison = await QueueAsync(connection, _queue + "-poison");
        string job = Job("lost-1", Completion());
        await queue.SendMessageAsync(job, Ct);
        for (int attempt = 1; attempt <= 3; attempt++)
        {
            var leased = (await queue.ReceiveMessageAsync(TimeSpan.FromSeconds(30), Ct)).Value;
            Assert.Equal(attempt, leased.DequeueCount);
            await queue.UpdateMessageAsync(leased.MessageId, leased.PopReceipt, visibilityTimeout: TimeSpan.Zero, cancellationToken: Ct); // "crashed"
        }

        await using var server = await StartAsync(connection);
        await WaitUntilAsync(async () => (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0, "the message to reach the poison queue");
        Assert.Equal(job, (await poison.ReceiveMessageAsync(cancellationToken: Ct)).Value.Body.ToString());
        await WaitEmptyAsync(queue);

        // Unrun: no result was written for it.
        var container = new BlobContainerClient(connection, _container);
        Assert.False(await container.ExistsAsync(Ct) && await container.GetBlobClient("lost-1.json").ExistsAsync(Ct), "the job ran although it was past the limit");
    }

    private async Task<KilnServer> StartAsync(string connection, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null)
    {
        var server = await KilnServer.StartAsync(
            _model.Path,
            [
                $"AzureWebJobsStorage={connection}",
                $"Kiln:JobQueue={_queue}",
                $"Kiln:ResultContainer={_container}",
                "AzureFunctionsJobHost:extensions:queues:visibilityTimeout=00:00:00.5",
                "AzureFunctionsJobHost:extensions:queues:maxPollingInterval=00:00:00.2",
            ],
            configure);
        await server.WaitUntilLoadedAsync();
        return server;
    }

    private static async Task<QueueClient> QueueAsync(string connection, string name)
    {
        var queue = new QueueClient(connection, name, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None });
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        return queue;
    }

    private async Task<JsonDocument> ResultAsync(string connection, string id)
    {
        var container = new BlobContainerClient(connection, _container);
        var blob = container.GetBlobClient(id + ".json");
        await WaitUntilAsync(async () => await container.ExistsAsync(Ct) && await blob.ExistsAsync(Ct), $"result blob {id}.json");
        var content = (await blob.DownloadContentAsync(Ct)).Value;
        Assert.Equal("application/json", content.Details.ContentType);
        return JsonDocument.Parse(content.Content.ToMemory());
    }

    /// <summary>No message left, visible or not (the count includes leased ones).</summary>
    private static Task WaitEmptyAsync(QueueClient queue) =>
        WaitUntilAsync(async () => (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount == 0, $"queue {queue.Name} to empty");

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var until = DateTime.UtcNow + Deadline;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"timed out waiting for {what}");
            await Task.Delay(100, Ct);
        }
    }

    private static string Job(string id, string request) => $$"""{"id": "{{id}}", "request": {{request}}}""";

    private static string Chat() =>
        $$"""{"model": "{{KilnServerFixture.ModelId}}", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0}""";

    private static string Completion() =>
        $$"""{"model": "{{KilnServerFixture.ModelId}}", "prompt": "once upon", "max_tokens": 4, "temperature": 0, "stream": true}""";

    public void Dispose() => _model.Dispose();
}
