using System.Text.Json;
using Kiln.Access;
using Kiln.Functions.Hosting;
using Kiln.Functions.OpenAi;
using Kiln.Runtime.Chat;
using Kiln.Runtime.Chat.Tools;
using Kiln.Runtime.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Api;

/// <summary>
/// The endpoints' code, shared by the Functions triggers (worker mode) and the standalone Kestrel routes: each takes
/// the request's <see cref="HttpContext"/> and writes the whole answer, streamed or not. No trigger holds logic.
/// While the pod drains (<see cref="ShutdownDrain"/>) inference calls are refused with 503 draining and the calls
/// already in flight are counted until they end; the probes and stats keep answering. Every endpoint but the probes
/// checks the caller's key first (<see cref="ApiAccess"/>).
/// </summary>
public sealed partial class ApiHandlers(ModelHost model, KilnMetrics metrics, ShutdownDrain drain, ApiAccess access, ILogger<ApiHandlers> logger)
{
    private readonly long _maxBodyBytes = model.Settings.MaxRequestBodyBytes;

    /// <summary>The engine priority of interactive HTTP calls: the most urgent (queue jobs use higher numbers).</summary>
    public const int HttpPriority = 0;

    public Task ChatCompletionsAsync(HttpContext context) => ChatCompletionsAsync(context, HttpPriority);

    /// <summary>The chat endpoint at an engine priority of the caller's choice (queue jobs run behind HTTP).</summary>
    public Task ChatCompletionsAsync(HttpContext context, int priority) => RunAsync(context, "chat_completions", c => ChatAsync(c, priority));

    public Task CompletionsAsync(HttpContext context) => CompletionsAsync(context, HttpPriority);

    public Task CompletionsAsync(HttpContext context, int priority) => RunAsync(context, "completions", c => CompletionAsync(c, priority));

    public Task ModelsAsync(HttpContext context) => RunAsync(context, "models", c =>
        WriteJsonAsync(c, StatusCodes.Status200OK, w => OpenAiResponses.WriteModelList(w, model.ModelId, model.Created)));

    /// <summary>An unknown URL: 404 with OpenAI's error body.</summary>
    public static Task NotFoundAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new OpenAiException(StatusCodes.Status404NotFound, $"Invalid URL ({context.Request.Method} {context.Request.Path})", "invalid_request_error", null, null)
            .WriteAsync(context.Response);
    }

    /// <summary>A known URL called with another method: 405 with OpenAI's error body and the Allow header.</summary>
    public static Task MethodNotAllowedAsync(HttpContext context, IReadOnlyList<string> allowed)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Headers.Allow = string.Join(", ", allowed);
        return new OpenAiException(StatusCodes.Status405MethodNotAllowed, $"Invalid method for URL ({context.Request.Method} {context.Request.Path})", "invalid_request_error", null, null)
            .WriteAsync(context.Response);
    }

    /// <summary>Liveness: the process answers, whatever the model is doing.</summary>
    public Task HealthAsync(HttpContext context) => WriteJsonAsync(context, StatusCodes.Status200OK, w =>
    {
        w.WriteStartObject();
        w.WriteString("status", "ok");
        w.WriteEndObject();
    });

    /// <summary>Readiness: 200 once the model is loaded, 503 while it loads, after it failed or once draining.</summary>
    public Task ReadyAsync(HttpContext context)
    {
        string state = StateName();
        return WriteJsonAsync(context, state == "ready" ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", state);
            w.WriteString("model", model.ModelId);
            w.WriteString("device", model.Device);
            if (model.LoadError is { } error)
            {
                w.WriteString("error", error.Message);
            }

            w.WriteEndObject();
        });
    }

    /// <summary>
    /// The engine's load as JSON, for the KEDA scaler (scaler/Kiln.Scaler/Sources/PodStatsSource.cs reads it):
    /// an idle zero while the model loads, so a loading pod neither blocks scale-to-zero nor adds backlog. The state is
    /// "draining" once the pod stops: the gateway then routes nothing more to it.
    /// </summary>
    public Task StatsAsync(HttpContext context)
    {
        if (access.Refuse(context, ApiScope.Stats) is { } refused)
        {
            return refused;
        }

        var stats = model.Engine?.GetStats();
        return WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("model", model.ModelId);
            w.WriteString("state", StateName());
            w.WriteString("device", model.Device);
            w.WriteNumber("waitingRequests", stats?.WaitingRequests ?? 0);
            w.WriteNumber("runningSequences", stats?.RunningSequences ?? 0);
            w.WriteNumber("pendingPromptTokens", stats?.PendingPromptTokens ?? 0);
            w.WriteNumber("pendingDecodeTokens", stats?.PendingDecodeTokens ?? 0);
            w.WriteNumber("tokenBacklog", stats?.TokenBacklog ?? 0);
            w.WriteNumber("kvBlocksUsed", stats?.KvBlocksUsed ?? 0);
            w.WriteNumber("kvBlocksTotal", stats?.KvBlocksTotal ?? 0);
            w.WriteNumber("tensorParallelSize", stats?.TensorParallelSize ?? 0);
            w.WriteStartArray("deviceIds");
            foreach (int id in stats?.DeviceIds ?? [])
            {
                w.WriteNumberValue(id);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public async Task MetricsAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (access.Refuse(context, ApiScope.Stats) is { } refused)
        {
            await refused.ConfigureAwait(false);
            return;
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await metrics.WriteAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>loading, ready or failed, and draining over all three once the pod stops.</summary>
    private string StateName() => drain.IsDraining ? "draining" : model.State switch
    {
        ModelState.Ready => "ready",
        ModelState.Loading => "loading",
        _ => "failed",
    };

    private async Task ChatAsync(HttpContext context, int priority)
    {
        using var work = drain.TryEnter() ?? throw OpenAiException.Draining();
        var engine = RequireEngine();
        using var body = await ReadJsonAsync(context).ConfigureAwait(false);
        var request = OpenAiRequests.ParseChat(body.RootElement);
        RequireModel(request.Options.Model);
        var template = model.Template;
        var tools = request.Tools;
        var prompt = new ChatPrompt(request.Messages) { Tools = tools.Active ? tools.Tools : [], TemplateArguments = request.TemplateArguments };
        string text;
        try
        {
            text = template.Render(prompt);
        }
        catch (ArgumentException e)
        {
            throw InferenceCall.MapArgumentError(e, "messages");
        }

        var header = Header("chatcmpl", request.Options.Stream ? OpenAiResponses.ChatChunkObject : OpenAiResponses.ChatCompletionObject);

        // A template that writes BOS itself must not get a second one from the tokenizer.
        using var call = InferenceCall.Start(
            engine, [new PromptInput(text, null)], request.Options.Sampling, !template.IncludesBos, header.Id, "messages", metrics, priority, CallerOf(context), context.RequestAborted,
            context.Features.Get<IFirstTokenFeature>());
        var names = tools.Tools.Select(t => t.Name).ToArray();
        Func<ToolCallParser>? parser = tools.Active ? () => new ToolCallParser(template.ToolCalls, names) : null;
        await AnswerWriter.WriteAsync(context, call, header, request.Options, LogProbTexts(engine, request.Options), chat: true, parser).ConfigureAwait(false);
    }

    private async Task CompletionAsync(HttpContext context, int priority)
    {
        using var work = drain.TryEnter() ?? throw OpenAiException.Draining();
        var engine = RequireEngine();
        using var body = await ReadJsonAsync(context).ConfigureAwait(false);
        var request = OpenAiRequests.ParseCompletion(body.RootElement);
        RequireModel(request.Options.Model);
        var header = Header("cmpl", OpenAiResponses.CompletionObject);
        using var call = InferenceCall.Start(
            engine, request.Prompts, request.Options.Sampling, addSpecialTokens: true, header.Id, "prompt", metrics, priority, CallerOf(context), context.RequestAborted,
            context.Features.Get<IFirstTokenFeature>());
        await AnswerWriter.WriteAsync(context, call, header, request.Options, LogProbTexts(engine, request.Options), chat: false, newParser: null).ConfigureAwait(false);
    }

    private static TokenTexts? LogProbTexts(InferenceEngine engine, GenerationOptions options) => options.LogProbs ? new TokenTexts(engine.Model.Tokenizer) : null;

    /// <summary>Turns the protocol's exceptions into OpenAI error bodies and counts every call by status.</summary>
    private async Task RunAsync(HttpContext context, string endpoint, Func<HttpContext, Task> handle)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            access.Demand(context, ApiScope.Api); // the key first: a refused caller learns nothing of the server's state
            await handle(context).ConfigureAwait(false);
        }
        catch (OpenAiException e)
        {
            LogRefused(logger, endpoint, e.StatusCode, e.Code, e.Message);
            await e.WriteAsync(context.Response).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            // Kestrel's own refusals of a body (too large, cut short, too slow): the client's fault, one line, no trace.
            var error = BodyError(e);
            LogRefused(logger, endpoint, error.StatusCode, error.Code, e.Message);
            await error.WriteAsync(context.Response).ConfigureAwait(false);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away: its engine requests were cancelled with RequestAborted and their blocks freed.
        }
#pragma warning disable CA1031 // the last resort of a request: an OpenAI-shaped 500, or a cut stream
        catch (Exception e)
#pragma warning restore CA1031
        {
            LogFailure(logger, e, endpoint);
            if (context.Response.HasStarted)
            {
                context.Abort(); // a stream cannot change its status; cutting it tells the client it is incomplete
            }
            else
            {
                await new OpenAiException(StatusCodes.Status500InternalServerError, "The server had an error while processing your request.", "server_error", null, null)
                    .WriteAsync(context.Response).ConfigureAwait(false);
            }
        }
        finally
        {
            metrics.HttpRequests.WithLabels(endpoint, context.RequestAborted.IsCancellationRequested ? "aborted" : context.Response.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        }
    }

    private InferenceEngine RequireEngine() => model.State switch
    {
        ModelState.Ready => model.Engine!,
        ModelState.Loading => throw OpenAiException.Loading(model.ModelId),
        _ => throw OpenAiException.Unavailable($"The model `{model.ModelId}` failed to load: {model.LoadError?.Message}"),
    };

    private void RequireModel(string requested)
    {
        if (!string.Equals(requested, model.ModelId, StringComparison.Ordinal))
        {
            throw OpenAiException.ModelNotFound(requested);
        }
    }

    /// <summary>
    /// Who asks, for the engine's fair shares and per-caller bound: the caller the access check set (an API key's id,
    /// a client's address where no key is configured, <c>queue:name</c> for queue jobs).
    /// </summary>
    private static string CallerOf(HttpContext context) =>
        (context.Features.Get<ApiCaller>() ?? ApiCaller.Anonymous(context.Connection.RemoteIpAddress)).Id;

    private static OpenAiException BodyError(BadHttpRequestException e) => e.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => new(StatusCodes.Status413PayloadTooLarge, "The request body is too large.", "invalid_request_error", null, "request_too_large"),
        StatusCodes.Status408RequestTimeout => new(StatusCodes.Status408RequestTimeout, "The request body arrived too slowly.", "invalid_request_error", null, "request_timeout"),
        _ => OpenAiException.BadRequest($"The request body could not be read: {e.Message}", null, "invalid_body"),
    };

    private async Task<JsonDocument> ReadJsonAsync(HttpContext context)
    {
        // Bounded before anything is parsed or tokenized (Kestrel answers a larger Content-Length or body with 413).
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = _maxBodyBytes;
        }

        try
        {
            return await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw OpenAiException.BadRequest($"We could not parse the JSON body of your request: {e.Message}", null, "invalid_json");
        }
    }

    private ResponseHeader Header(string prefix, string objectName) =>
        new($"{prefix}-{Guid.NewGuid():N}", objectName, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.ModelId);

    private static Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write) => ApiJson.WriteAsync(context, status, write);

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused a {Endpoint} request: {Status} {Code}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string endpoint, int status, string? code, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "The {Endpoint} request failed")]
    private static partial void LogFailure(ILogger logger, Exception exception, string endpoint);
}
