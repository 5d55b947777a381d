using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace Kiln.Gateway;

/// <summary>
/// Builds the gateway: the forwarding middleware for /api/..., its own /healthz, /readyz and /gateway/stats, and
/// the loops (discovery, pod stats, scaler reports). With Gateway:ApiKeys set, everything but /healthz and /readyz
/// needs one of them (<see cref="GatewayAccess"/>). The listening address is ASP.NET's usual --urls /
/// ASPNETCORE_URLS; tests start it with <see cref="StartAsync"/> on 127.0.0.1:0 with their own clock.
/// </summary>
public static class GatewayHost
{
    /// <summary>Settings come from <paramref name="options"/> when given, else the <c>Gateway</c> section; invalid ones throw naming the setting.</summary>
    public static WebApplication Build(string[] args, GatewayOptions? options = null, TimeProvider? time = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        options ??= GatewayOptions.FromConfiguration(builder.Configuration);
        options.Validate();
        time ??= TimeProvider.System;

        // The gateway bounds bodies itself (413 with an OpenAI body), above Kestrel's default of 30 MB if need be.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        var s = builder.Services;
        s.AddSingleton(Options.Create(options));
        s.AddHttpForwarder();
        // Passed explicitly, not registered as TimeProvider: the forwarder's own timeouts stay on the real clock.
        s.AddSingleton(sp => new HeldRequests(options.MaxHeldRequests));
        s.AddSingleton(_ => GatewayIdentity.From(options));
        s.AddSingleton(new GatewayAccess(options));
        s.AddSingleton<PodDirectory>();
        s.AddSingleton<UpstreamClient>();
        s.AddSingleton(_ => new PrefixAffinity());
        s.AddSingleton(sp => new Router(sp.GetRequiredService<PodDirectory>(), sp.GetRequiredService<PrefixAffinity>(), options.BalancingMode(), options.AffinityMaxBacklogTokens, options.PrefixBlockChars));
        s.AddSingleton(sp => new PodStatsReader(
            new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(2) }) { Timeout = TimeSpan.FromSeconds(2) },
            sp.GetRequiredService<PodDirectory>(),
            sp.GetRequiredService<GatewayAccess>().StatsKey));
        s.AddSingleton<IPodDiscovery>(_ => CreateDiscovery(options));
        s.AddSingleton(sp => new ScalerReporter(sp.GetRequiredService<IOptions<GatewayOptions>>(), sp.GetRequiredService<GatewayIdentity>(), sp.GetRequiredService<HeldRequests>(), time, sp.GetRequiredService<ILogger<ScalerReporter>>()));
        s.AddHostedService(sp => sp.GetRequiredService<ScalerReporter>());
        s.AddHostedService(sp => new PodDiscoveryLoop(sp.GetRequiredService<IPodDiscovery>(), sp.GetRequiredService<PodDirectory>(), sp.GetRequiredService<PodStatsReader>(), sp.GetRequiredService<IOptions<GatewayOptions>>(), time, sp.GetRequiredService<ILogger<PodDiscoveryLoop>>()));
        s.AddHostedService(sp => new PodStatsLoop(sp.GetRequiredService<PodDirectory>(), sp.GetRequiredService<PodStatsReader>(), sp.GetRequiredService<IOptions<GatewayOptions>>(), time));
        s.AddSingleton<GatewayStats>();
        services?.Invoke(s);

        var app = builder.Build();
        var started = false;
        app.Lifetime.ApplicationStarted.Register(() => started = true);
        app.UseMiddleware<ForwardingMiddleware>(time);
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", () => started ? Results.Text("ready") : Results.Text("starting", statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapGet("/gateway/stats", (HttpContext c, GatewayStats stats, GatewayAccess access) =>
            access.AdmitsStats(c) ? stats.WriteAsync(c) : GatewayError.InvalidApiKey().WriteAsync(c.Response, c.RequestAborted));
        app.Services.GetRequiredService<GatewayAccess>().LogMode(app.Logger);
        app.Services.GetRequiredService<IPodDiscovery>(); // a bad Kubernetes configuration fails the start, not the first call
        return app;
    }

    /// <summary>Starts a gateway on 127.0.0.1 with an ephemeral port, for tests and benchmarks.</summary>
    public static async Task<RunningGateway> StartAsync(GatewayOptions options, TimeProvider? time = null, Action<IServiceCollection>? services = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var app = Build(["--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning"], options, time, s =>
        {
            s.AddSingleton<IHostLifetime, EmbeddedLifetime>();
            services?.Invoke(s);
        });
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        // Kestrel writes the bound port back into the server's addresses once it listens.
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningGateway(app, new Uri(address.TrimEnd('/') + "/"));
    }

    private static IPodDiscovery CreateDiscovery(GatewayOptions o)
    {
        var urls = o.StaticPodUrls();
        if (urls.Count > 0)
        {
            return new StaticPodDiscovery(new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(2) }) { Timeout = TimeSpan.FromSeconds(2) }, urls);
        }

        var client = KubernetesPodDiscovery.CreateClient(o.KubernetesBaseUrl, TimeSpan.FromSeconds(10));
        return new KubernetesPodDiscovery(client, o.EffectiveNamespace(), o.PodSelector!.Trim(), o.PodPort);
    }
}
