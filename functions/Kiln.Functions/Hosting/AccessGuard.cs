using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Hosting;

/// <summary>
/// Refuses to start an app that anyone could call without a key. With <c>Kiln:ApiKeys</c> set it only says how many
/// keys there are; without, the app serves loopback only unless <c>Kiln:AllowAnonymous</c> is true. Standalone, the
/// configured URLs are checked before Kestrel binds (StartingAsync) and the bound addresses after (StartedAsync, for
/// endpoints set up in code). Under the Functions host the worker cannot know where the host listens (the host owns
/// the public port and forwards to the worker's loopback Kestrel), so there a key or AllowAnonymous is required.
/// </summary>
public sealed partial class AccessGuard(AccessSettings settings, bool underFunctionsHost, IConfiguration configuration, IServiceProvider services, ILogger<AccessGuard> log)
    : IHostedLifecycleService
{
    private const string ApiKeysSetting = $"{KilnSettings.Section}:{AccessSettings.ApiKeysKey} (environment {KilnSettings.Section}__{AccessSettings.ApiKeysKey})";
    private const string AnonymousSetting = $"{KilnSettings.Section}:{AccessSettings.AllowAnonymousKey}=true";

    /// <summary>Registers the guard for the mode the app runs in.</summary>
    public static void Add(IServiceCollection services, bool underFunctionsHost) =>
        services.AddHostedService(sp => ActivatorUtilities.CreateInstance<AccessGuard>(sp, underFunctionsHost));

    private bool Anonymous => settings.ApiKeys.IsEmpty;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        if (!Anonymous)
        {
            string callers = string.Join(", ", settings.ApiKeys.Callers.Select(c => c.Id));
            LogKeys(log, settings.ApiKeys.Count, callers, settings.MetricsKeys.Count);
            return Task.CompletedTask;
        }

        if (settings.AllowAnonymous)
        {
            LogAnonymous(log, AnonymousSetting);
            return Task.CompletedTask;
        }

        if (underFunctionsHost)
        {
            throw new InvalidOperationException(
                $"No API key is set ({ApiKeysSetting}) and the app runs under the Functions host, which listens where the worker cannot see: " +
                $"set {KilnSettings.Section}:{AccessSettings.ApiKeysKey} to the keys clients send as `Authorization: Bearer <key>`, or {AnonymousSetting} to serve without a key.");
        }

        var configured = ConfiguredUrls();
        RefuseBeyondLoopback(configured);
        string urls = string.Join(";", configured.Where(u => u.Length > 0));
        LogLoopbackOnly(log, ApiKeysSetting, urls);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (Anonymous && !settings.AllowAnonymous && !underFunctionsHost && services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>() is { } bound)
        {
            RefuseBeyondLoopback([.. bound.Addresses]);
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary><c>urls</c> (<c>--urls</c>, <c>ASPNETCORE_URLS</c>, the standalone default) and Kestrel's configured endpoints.</summary>
    private List<string> ConfiguredUrls() =>
        [configuration[WebHostDefaults.ServerUrlsKey] ?? "", .. configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"] ?? "")];

    private static void RefuseBeyondLoopback(List<string> urls)
    {
        var beyond = LoopbackUrls.Beyond(urls);
        if (beyond.Count > 0)
        {
            throw new InvalidOperationException(
                $"No API key is set ({ApiKeysSetting}) and the app would listen beyond loopback on {string.Join(", ", beyond)}: " +
                $"set {KilnSettings.Section}:{AccessSettings.ApiKeysKey} to the keys clients send as `Authorization: Bearer <key>`, listen on loopback only " +
                $"(--urls={KilnApp.DefaultStandaloneUrl}), or set {AnonymousSetting} to serve anyone who can reach it.");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "API keys required: {Count} API keys ({Callers}), {MetricsCount} metrics keys")]
    private static partial void LogKeys(ILogger logger, int count, string callers, int metricsCount);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No API key is set and {Setting}: anyone who reaches this app can call it")]
    private static partial void LogAnonymous(ILogger logger, string setting);

    [LoggerMessage(Level = LogLevel.Information, Message = "No API key is set ({Setting}): serving loopback only ({Urls}); set keys to listen beyond it")]
    private static partial void LogLoopbackOnly(ILogger logger, string setting, string urls);
}
