using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Kiln.Access;
using Kiln.Functions.Api;
using Kiln.Functions.OpenAi;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Jobs;

/// <summary>How a delivery ended without an exception (the message is then deleted, never retried).</summary>
public enum JobOutcome
{
    /// <summary>The job ran and its response is in the result blob.</summary>
    Completed,

    /// <summary>A result blob already existed (a duplicate delivery): nothing ran.</summary>
    AlreadyDone,

    /// <summary>The job can never succeed (bad message, bad request): its error is in the result blob.</summary>
    Rejected,
}

/// <summary>A failure worth retrying (engine overloaded, model loading): the delivery throws so the queue retries it.</summary>
public sealed class TransientJobException : Exception
{
    public TransientJobException()
    {
    }

    public TransientJobException(string message)
        : base(message)
    {
    }

    public TransientJobException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// Runs one queue job <c>{"id", "request"}</c> on the shared engine through the same handlers as HTTP, at
/// <see cref="JobPriority"/> so a deep queue cannot starve interactive calls, and writes
/// <c>{id, response | error, timings}</c> to blob <c>{id}.json</c>. Shared by the queue trigger (under the host) and the
/// standalone poller, so both modes have one set of semantics. Delivery is at least once: an existing result blob
/// means done, and duplicates in flight in this process wait for the first instead of running twice.
/// </summary>
public sealed partial class JobRunner(ApiHandlers handlers, JobOptions options, ILogger<JobRunner> logger) : IDisposable
{
    /// <summary>The engine priority of queue jobs: behind HTTP's <see cref="ApiHandlers.HttpPriority"/>.</summary>
    public const int JobPriority = 10;

    private readonly ConcurrentDictionary<string, Task<JobOutcome>> _inFlight = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _containerGate = new(1, 1);
    private BlobContainerClient? _container;

    public JobOptions Options => options;

    /// <summary>
    /// Handles one delivery. Returns when the message can be deleted; throws <see cref="TransientJobException"/> when
    /// it should be retried, after recording the error in the result blob if this was the last allowed attempt.
    /// </summary>
    public Task<JobOutcome> RunAsync(string message, string messageId, long dequeueCount, CancellationToken cancellationToken) =>
        RunAsync(message, messageId, dequeueCount, null, cancellationToken);

    /// <summary>As above; <paramref name="firstToken"/> hears when the job's first token is produced (it has started).</summary>
    public async Task<JobOutcome> RunAsync(string message, string messageId, long dequeueCount, IFirstTokenFeature? firstToken, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var container = await ContainerAsync(cancellationToken).ConfigureAwait(false);
        if (!TryParse(message, out string? id, out JsonNode? request, out string? kind, out string? problem))
        {
            // Not retried: no later attempt can make it valid. Filed under the job's id where it had a usable one.
            string blobId = id ?? SafeId(messageId);
            LogRejected(logger, blobId, problem!);
            await WriteResultAsync(container, blobId, w => WriteError(w, "invalid_job", problem!, 400), null, dequeueCount, cancellationToken).ConfigureAwait(false);
            return JobOutcome.Rejected;
        }

        while (true)
        {
            var mine = new TaskCompletionSource<JobOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            var running = _inFlight.GetOrAdd(id!, mine.Task);
            if (running != mine.Task)
            {
                // A duplicate delivery of a job this process is running: wait for it, then look at its blob again.
                try
                {
                    await running.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    // The first delivery's failure is its own; this one decides for itself below.
                }

                continue;
            }

            try
            {
                var outcome = await RunOnceAsync(container, id!, request!, kind!, dequeueCount, firstToken, cancellationToken).ConfigureAwait(false);
                mine.SetResult(outcome);
                return outcome;
            }
            catch (Exception e)
            {
                mine.SetException(e);
                throw;
            }
            finally
            {
                _inFlight.TryRemove(new KeyValuePair<string, Task<JobOutcome>>(id!, mine.Task));
            }
        }
    }

    private async Task<JobOutcome> RunOnceAsync(
        BlobContainerClient container, string id, JsonNode request, string kind, long dequeueCount, IFirstTokenFeature? firstToken, CancellationToken cancellationToken)
    {
        if (await container.GetBlobClient(BlobName(id)).ExistsAsync(cancellationToken).ConfigureAwait(false))
        {
            LogDuplicate(logger, id);
            return JobOutcome.AlreadyDone;
        }

        var started = DateTimeOffset.UtcNow;
        long start = Stopwatch.GetTimestamp();
        var context = new DefaultHttpContext { RequestAborted = cancellationToken };
        context.Request.Method = HttpMethods.Post;
        context.Request.ContentType = "application/json";
        context.Request.Body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(request));
        using var response = new MemoryStream();
        context.Response.Body = response;
        context.Features.Set(new ApiCaller($"queue:{options.QueueName}")); // admitted: whoever could enqueue it holds the storage account
        if (firstToken is not null)
        {
            context.Features.Set(firstToken);
        }

        await (kind == "chat" ? handlers.ChatCompletionsAsync(context, JobPriority) : handlers.CompletionsAsync(context, JobPriority)).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested(); // the handlers swallow a cancelled call: shutting down is no result
        var timings = new Timings(started, Stopwatch.GetElapsedTime(start));
        int status = context.Response.StatusCode;
        using var body = JsonDocument.Parse(response.ToArray());
        if (status == StatusCodes.Status200OK)
        {
            await WriteResultAsync(container, id, w => { w.WritePropertyName("response"); body.RootElement.WriteTo(w); }, timings, dequeueCount, cancellationToken).ConfigureAwait(false);
            LogCompleted(logger, id, timings.Elapsed.TotalMilliseconds);
            return JobOutcome.Completed;
        }

        var error = body.RootElement.TryGetProperty("error", out var e) ? e : body.RootElement;
        void Write(Utf8JsonWriter w)
        {
            w.WritePropertyName("error");
            error.WriteTo(w);
            w.WriteNumber("status", status);
        }

        if (status == StatusCodes.Status503ServiceUnavailable && error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
            && code.GetString() == OpenAiException.DrainingCode)
        {
            // This process is stopping: the job never ran, so it is no failure and leaves no result, last attempt or not.
            LogNotRunDraining(logger, id);
            throw new TransientJobException($"job {id} was not run: the server is draining");
        }

        // Overloaded (429), loading or failed model (503), a server fault (500): another attempt may succeed.
        if (status is StatusCodes.Status429TooManyRequests or >= 500)
        {
            string text = error.TryGetProperty("message", out var m) ? m.GetString() ?? "" : error.GetRawText();
            if (dequeueCount >= options.MaxDequeueCount)
            {
                // The last attempt: the message goes to the poison queue next, so its error is kept here.
                await WriteResultAsync(container, id, Write, timings, dequeueCount, cancellationToken).ConfigureAwait(false);
            }

            LogTransient(logger, id, dequeueCount, options.MaxDequeueCount, text);
            throw new TransientJobException($"job {id} failed with {status} (attempt {dequeueCount} of {options.MaxDequeueCount}): {text}");
        }

        await WriteResultAsync(container, id, Write, timings, dequeueCount, cancellationToken).ConfigureAwait(false);
        LogRejected(logger, id, error.GetRawText());
        return JobOutcome.Rejected;
    }

    /// <summary>Validates the message: an object with a usable id and a chat (messages) or completions (prompt) body.</summary>
    private static bool TryParse(string message, out string? id, out JsonNode? request, out string? kind, out string? problem)
    {
        id = null;
        request = null;
        kind = null;
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(message);
        }
        catch (JsonException e)
        {
            problem = $"The message is not valid JSON: {e.Message}";
            return false;
        }

        if (root is not JsonObject job)
        {
            problem = "A job must be a JSON object {\"id\": ..., \"request\": {...}}.";
            return false;
        }

        var rawId = job["id"];
        string? text = rawId is JsonValue v && (v.TryGetValue(out string? s) ? s : v.GetValueKind() == JsonValueKind.Number ? v.ToJsonString() : null) is { } t ? t : null;
        if (text is not null && IdPattern().IsMatch(text))
        {
            id = text;
        }

        if (job["request"] is not JsonObject body)
        {
            problem = "The job has no \"request\" object (a chat or completions request body).";
            return false;
        }

        if (id is null)
        {
            problem = rawId is null ? "The job has no \"id\"." : "The job's \"id\" must be a string or number of letters, digits, '.', '_' or '-' (at most 200).";
            return false;
        }

        kind = body.ContainsKey("messages") ? "chat" : body.ContainsKey("prompt") ? "completions" : null;
        if (kind is null)
        {
            problem = "The request has neither \"messages\" (chat) nor \"prompt\" (completions).";
            return false;
        }

        // A result blob is one JSON document: streaming has no meaning here.
        var copy = (JsonObject)body.DeepClone();
        copy.Remove("stream");
        copy.Remove("stream_options");
        request = copy;
        problem = null;
        return true;
    }

    private static string SafeId(string messageId) => IdPattern().IsMatch(messageId) ? messageId : Guid.NewGuid().ToString("N");

    public static string BlobName(string id) => id + ".json";

    private static void WriteError(Utf8JsonWriter w, string code, string message, int status)
    {
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", "invalid_request_error");
        w.WriteNull("param");
        w.WriteString("code", code);
        w.WriteEndObject();
        w.WriteNumber("status", status);
    }

    /// <summary>Writes the blob only if none exists: a concurrent delivery elsewhere that got there first wins.</summary>
    private static async Task WriteResultAsync(BlobContainerClient container, string id, Action<Utf8JsonWriter> writeBody, Timings? timings, long dequeueCount, CancellationToken cancellationToken)
    {
        using var stream = new MemoryStream();
        await using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("id", id);
            writeBody(w);
            w.WriteStartObject("timings");
            if (timings is { } t)
            {
                w.WriteString("started_at", t.Started);
                w.WriteString("finished_at", t.Started + t.Elapsed);
                w.WriteNumber("duration_ms", Math.Round(t.Elapsed.TotalMilliseconds, 3));
            }

            w.WriteString("recorded_at", DateTimeOffset.UtcNow);
            w.WriteNumber("dequeue_count", dequeueCount);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        stream.Position = 0;
        try
        {
            await container.GetBlobClient(BlobName(id)).UploadAsync(
                stream,
                new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" }, Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } },
                cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status == StatusCodes.Status409Conflict)
        {
            // Already written by another delivery of the same job.
        }
    }

    private async Task<BlobContainerClient> ContainerAsync(CancellationToken cancellationToken)
    {
        if (_container is { } ready)
        {
            return ready;
        }

        await _containerGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_container is null)
            {
                string connection = options.ConnectionString ?? throw new InvalidOperationException($"{JobOptions.ConnectionSetting} is not set: queue jobs need a storage account.");
                var container = new BlobContainerClient(connection, options.ResultContainer);
                await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                _container = container;
            }

            return _container;
        }
        finally
        {
            _containerGate.Release();
        }
    }

    public void Dispose() => _containerGate.Dispose();

    private readonly record struct Timings(DateTimeOffset Started, TimeSpan Elapsed);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
    private static partial Regex IdPattern();

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} completed in {Milliseconds:F0} ms")]
    private static partial void LogCompleted(ILogger logger, string id, double milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} not run: the server is draining")]
    private static partial void LogNotRunDraining(ILogger logger, string id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} already has a result: duplicate delivery skipped")]
    private static partial void LogDuplicate(ILogger logger, string id);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {Id} rejected: {Problem}")]
    private static partial void LogRejected(ILogger logger, string id, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {Id} failed on attempt {Attempt} of {Max}: {Error}")]
    private static partial void LogTransient(ILogger logger, string id, long attempt, int max, string error);
}
