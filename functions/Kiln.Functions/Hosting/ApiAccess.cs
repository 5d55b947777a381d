using Kiln.Access;
using Kiln.Functions.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Kiln.Functions.Hosting;

/// <summary>
/// The key check at the entry of every endpoint but health and readiness, the same in both modes (the handlers are
/// shared): the caller's <c>Authorization: Bearer</c> key against <see cref="AccessSettings"/>. An admitted call gets
/// its <see cref="ApiCaller"/> as a request feature (<c>anon:&lt;address&gt;</c> where no key is configured); a
/// missing or wrong key is a 401 <c>invalid_api_key</c> with <c>WWW-Authenticate: Bearer</c>, a metrics key on the
/// API a 403 (it is a valid key, just not for this). Queue jobs run through the same handlers on a context the app
/// builds itself, already carrying their caller (<c>queue:&lt;queue&gt;</c>): the storage account authorized them.
/// </summary>
public sealed class ApiAccess(AccessSettings settings)
{
    /// <summary>Admits the call or throws the refusal, for code whose <see cref="OpenAiException"/>s are written for it.</summary>
    public void Demand(HttpContext context, ApiScope scope)
    {
        if (Check(context, scope) is { } refusal)
        {
            throw refusal;
        }
    }

    /// <summary>Null when the call is admitted; else the refusal, being written.</summary>
    public Task? Refuse(HttpContext context, ApiScope scope) => Check(context, scope)?.WriteAsync(context.Response);

    private OpenAiException? Check(HttpContext context, ApiScope scope)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Features.Get<ApiCaller>() is not null)
        {
            return null; // named by the app itself before the handlers (a queue job); HTTP requests arrive without one
        }

        var api = settings.ApiKeys;
        var metrics = settings.MetricsKeys;
        bool open = api.IsEmpty && (scope == ApiScope.Api || metrics.IsEmpty);
        if (open)
        {
            context.Features.Set(ApiCaller.Anonymous(context.Connection.RemoteIpAddress));
            return null;
        }

        string? header = context.Request.Headers.Authorization;
        if (api.TryMatch(header, out var caller) || (scope == ApiScope.Stats && metrics.TryMatch(header, out caller)))
        {
            context.Features.Set(caller);
            return null;
        }

        return scope == ApiScope.Api && metrics.TryMatch(header, out _) ? OpenAiException.Forbidden() : OpenAiException.InvalidApiKey();
    }
}
