using Kiln.Access;

namespace Kiln.Gateway;

/// <summary>
/// The gateway's own key check, made before a call is buffered, held or forwarded, so that a caller without a key
/// can neither fill the hold nor wake a deployment at zero: <c>Gateway:ApiKeys</c> admit <c>/api/...</c> (the same
/// keys as the app's <c>Kiln:ApiKeys</c>: the call goes on with its Authorization header unchanged and the pod checks
/// it again); they and <c>Gateway:StatsKey</c> admit <c>/gateway/stats</c>. No keys: everything is open, as the pods
/// then are on loopback only. <see cref="StatsKey"/> is what the gateway itself sends for a pod's <c>/api/stats</c>.
/// </summary>
public sealed partial class GatewayAccess
{
    private readonly ApiKeySet _clients;
    private readonly ApiKeySet _readers;

    public GatewayAccess(GatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var keys = ApiKeySet.Split([options.ApiKeys]);
        _clients = ApiKeySet.From(keys);
        StatsKey = !string.IsNullOrWhiteSpace(options.StatsKey) ? options.StatsKey.Trim() : keys.Count > 0 ? keys[0] : null;
        _readers = ApiKeySet.From([.. keys, StatsKey]);
    }

    /// <summary>Gateway:StatsKey, else the first of Gateway:ApiKeys, else null (no header).</summary>
    public string? StatsKey { get; }

    public bool RequiresKey => !_clients.IsEmpty;

    /// <summary>Whether a call to the app's routes may go on; sets its <see cref="ApiCaller"/> when it may.</summary>
    public bool AdmitsApi(HttpContext context) => Admits(context, _clients);

    public bool AdmitsStats(HttpContext context) => Admits(context, _readers);

    public void LogMode(ILogger logger)
    {
        if (RequiresKey)
        {
            LogKeys(logger, _clients.Count, StatsKey is null ? "no key" : "a key");
        }
        else
        {
            LogOpen(logger);
        }
    }

    private bool Admits(HttpContext context, ApiKeySet keys)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!RequiresKey)
        {
            context.Features.Set(ApiCaller.Anonymous(context.Connection.RemoteIpAddress));
            return true;
        }

        if (!keys.TryMatch(context.Request.Headers.Authorization, out var caller))
        {
            return false;
        }

        context.Features.Set(caller);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Calls need one of {Count} API keys (Gateway:ApiKeys); pod stats are read with {Stats}")]
    private static partial void LogKeys(ILogger logger, int count, string stats);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway:ApiKeys is not set: calls are held and forwarded without a key check here (pods without keys serve loopback only)")]
    private static partial void LogOpen(ILogger logger);
}
