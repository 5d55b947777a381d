using System.Text.Json;
using Kiln.Functions.Api;
using Kiln.Functions.Hosting;
using Kiln.Functions.Jobs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Kiln.Functions;

/// <summary>
/// Builds the app in either of its two modes, with the same services and handlers: as an isolated worker when the
/// Functions host started the process, or standalone on Kestrel (http://localhost:7071, the host's own default)
/// with the same routes under the same route prefix.
/// </summary>
public static class KilnApp
{
    public const string DefaultStandaloneUrl = "http://localhost:7071";
    public const string DefaultRoutePrefix = "api";

    /// <summary>The host passes --functions-uri (and sets Functions__Worker__HostEndpoint in newer versions).</summary>
    public static bool IsStartedByFunctionsHost(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        return args.Any(a => a == "--functions-uri" || a.StartsWith("--functions-uri=", StringComparison.Ordinal))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("Functions__Worker__HostEndpoint"));
    }

    /// <summary>
    /// Runs the app in the mode its arguments say until it stops. A setting that stops the start (a malformed value,
    /// or no API key beyond loopback) is an <see cref="InvalidOperationException"/>: the host has logged it, and the
    /// exit code is 2 with the message on stderr, as the gateway does.
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        bool started = false;
        try
        {
            if (IsStartedByFunctionsHost(args))
            {
                using var worker = CreateWorker(args);
                await worker.StartAsync().ConfigureAwait(false);
                started = true;
                await worker.WaitForShutdownAsync().ConfigureAwait(false);
            }
            else
            {
                await using var app = CreateStandalone(args);
                await app.StartAsync().ConfigureAwait(false);
                started = true;
                await app.WaitForShutdownAsync().ConfigureAwait(false);
            }

            return 0;
        }
        catch (InvalidOperationException e) when (!started)
        {
            await Console.Error.WriteLineAsync($"kiln: error: {e.Message}").ConfigureAwait(false);
            return 2;
        }
    }

    /// <summary>The isolated worker: the Functions host owns HTTP and forwards each call to the worker's Kestrel.</summary>
    public static IHost CreateWorker(string[] args)
    {
        var builder = FunctionsApplication.CreateBuilder(args);
        builder.ConfigureFunctionsWebApplication();
        builder.Services.AddKiln(builder.Configuration);
        AccessGuard.Add(builder.Services, underFunctionsHost: true);
        return builder.Build();
    }

    /// <summary>
    /// The app without the Functions host: a WebApplication whose routes call the same handlers as the triggers.
    /// Configuration comes from the usual sources plus <paramref name="args"/> (<c>--urls</c>, <c>--Kiln:Model</c>,
    /// <c>--Kiln:MaxSequences</c>, ...); <paramref name="configure"/> lets a caller (a test) adjust the builder.
    /// </summary>
    public static WebApplication CreateStandalone(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

        // Defaults below every other source: ASP.NET Core's per-request info lines would drown the app's own.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?> { ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning" },
        });
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            builder.WebHost.UseUrls(DefaultStandaloneUrl); // --urls and ASPNETCORE_URLS win when given
        }

        builder.Services.AddKiln(builder.Configuration);
        AccessGuard.Add(builder.Services, underFunctionsHost: false);
        if (!string.IsNullOrEmpty(builder.Configuration[JobOptions.ConnectionSetting]))
        {
            builder.Services.AddHostedService<QueuePoller>(); // no host to trigger queue jobs: poll the queue ourselves
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        MapRoutes(app, ReadRoutePrefix(AppContext.BaseDirectory));
        return app;
    }

    /// <summary>
    /// Registers the engine host (loading in the background), the metrics, the key check, the handlers and the drain
    /// on stop, with the host's shutdown timeout set from the drain timeout.
    /// </summary>
    public static IServiceCollection AddKiln(this IServiceCollection services, IConfiguration configuration)
    {
        var settings = KilnSettings.FromConfiguration(configuration);
        services.AddSingleton(settings);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ShutdownDrain>();
        services.AddHostedService<DrainService>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.DrainTimeout + KilnSettings.StopMargin);
        services.AddSingleton<ModelHost>();
        services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());
        services.AddSingleton<KilnMetrics>();
        services.AddSingleton(AccessSettings.FromConfiguration(configuration));
        services.AddSingleton<ApiAccess>();
        services.AddSingleton<ApiHandlers>();
        services.AddSingleton(JobOptions.FromConfiguration(configuration, AppContext.BaseDirectory));
        services.AddSingleton<JobRunner>();
        return services;
    }

    private static readonly string[] OtherMethods = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    public static void MapRoutes(IEndpointRouteBuilder endpoints, string routePrefix)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var handlers = endpoints.ServiceProvider.GetRequiredService<ApiHandlers>();
        string prefix = string.IsNullOrEmpty(routePrefix) ? string.Empty : "/" + routePrefix.Trim('/');
        foreach (var (method, route, handle) in Routes.All)
        {
            endpoints.MapMethods($"{prefix}/{route}", [method], context => handle(handlers, context));
        }

        // OpenAI answers a wrong method or an unknown URL with its error body too; so does the standalone app (under
        // the Functions host, the host answers those itself).
        foreach (var group in Routes.All.GroupBy(r => r.Route))
        {
            string[] allowed = [.. group.Select(r => r.Method)];
            string[] others = [.. OtherMethods.Except(allowed)];
            endpoints.MapMethods($"{prefix}/{group.Key}", others, context => ApiHandlers.MethodNotAllowedAsync(context, allowed));
        }

        endpoints.MapFallback(ApiHandlers.NotFoundAsync);
    }

    /// <summary>host.json's extensions.http.routePrefix (the host's default "api" when absent).</summary>
    public static string ReadRoutePrefix(string directory)
    {
        string path = Path.Combine(directory, "host.json");
        if (!File.Exists(path))
        {
            return DefaultRoutePrefix;
        }

        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        return document.RootElement.TryGetProperty("extensions", out var extensions)
            && extensions.TryGetProperty("http", out var http)
            && http.TryGetProperty("routePrefix", out var prefix)
            && prefix.ValueKind == JsonValueKind.String
                ? prefix.GetString()!
                : DefaultRoutePrefix;
    }
}
