using Kiln.Functions.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Kiln.Functions.Functions;

// Thin adapters: one class per endpoint, each handing the request's HttpContext to the shared handler. With ASP.NET
// Core integration the handler writes (and streams) the response itself; the functions then return an EmptyResult,
// which the worker executes as a no-op, keeping the usual http output binding in functions.metadata.
// AuthorizationLevel.Anonymous on purpose: OpenAI clients send `Authorization: Bearer <key>`, never the host's
// x-functions-key header or ?code=, so a Function or Admin level would make the host refuse every SDK call. The app
// checks the bearer key itself, in the shared handlers, the same way standalone (Hosting/ApiAccess.cs, Kiln:ApiKeys);
// under the host a key (or Kiln:AllowAnonymous=true) is required to start (Hosting/AccessGuard.cs).

public sealed class ChatCompletionsFunction(ApiHandlers handlers)
{
    [Function("ChatCompletions")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Routes.ChatCompletions)] HttpRequest request)
    {
        await handlers.ChatCompletionsAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class CompletionsFunction(ApiHandlers handlers)
{
    [Function("Completions")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Routes.Completions)] HttpRequest request)
    {
        await handlers.CompletionsAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class ModelsFunction(ApiHandlers handlers)
{
    [Function("Models")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Routes.Models)] HttpRequest request)
    {
        await handlers.ModelsAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class HealthFunction(ApiHandlers handlers)
{
    [Function("Health")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Routes.Health)] HttpRequest request)
    {
        await handlers.HealthAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class ReadyFunction(ApiHandlers handlers)
{
    [Function("Ready")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Routes.Ready)] HttpRequest request)
    {
        await handlers.ReadyAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class MetricsFunction(ApiHandlers handlers)
{
    [Function("Metrics")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Routes.Metrics)] HttpRequest request)
    {
        await handlers.MetricsAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}

public sealed class StatsFunction(ApiHandlers handlers)
{
    [Function("Stats")]
    public async Task<IActionResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Routes.Stats)] HttpRequest request)
    {
        await handlers.StatsAsync(request.HttpContext).ConfigureAwait(false);
        return new EmptyResult();
    }
}
