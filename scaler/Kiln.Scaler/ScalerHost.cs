using System.Net;
using System.Security.Cryptography.X509Certificates;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Service;
using Kiln.Scaler.Sources;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Kiln.Scaler;

/// <summary>A scaler started by <see cref="ScalerHost.StartAsync"/>; disposing stops it.</summary>
public sealed class RunningScaler(WebApplication app, Uri grpcAddress, Uri metricsAddress) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    /// <summary>The gRPC endpoint (http:// for HTTP/2 cleartext, https:// with TLS).</summary>
    public Uri GrpcAddress { get; } = grpcAddress;

    /// <summary>The HTTP/1.1 endpoint of /metrics and /healthz.</summary>
    public Uri MetricsAddress { get; } = metricsAddress;

    public IServiceProvider Services => App.Services;

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>
/// Builds the scaler: gRPC on one port (HTTP/2, optional TLS), /metrics and /healthz on another (HTTP/1.1, so that
/// Prometheus and kubelet probes need no HTTP/2). Tests and benchmarks start it in-process on 127.0.0.1:0 and may
/// replace the sources (queue, cluster, pod stats) through the services callback.
/// </summary>
public static class ScalerHost
{
    public static WebApplication Build(string[] args, ScalerOptions? options = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        options ??= builder.Configuration.GetSection("Scaler").Get<ScalerOptions>() ?? new ScalerOptions();
        var grpcListen = (ListenOptions?)null;
        var metricsListen = (ListenOptions?)null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            var ip = IPAddress.Parse(options.ListenAddress);
            k.Listen(ip, options.GrpcPort, l =>
            {
                l.Protocols = HttpProtocols.Http2;
                if (!string.IsNullOrEmpty(options.TlsCertificatePath))
                {
                    l.UseHttps(LoadCertificate(options));
                }

                grpcListen = l;
            });
            k.Listen(ip, options.MetricsPort, l =>
            {
                l.Protocols = HttpProtocols.Http1;
                metricsListen = l;
            });
        });

        builder.Services.AddSingleton(Options.Create(options));
        builder.Services.AddGrpc();
        builder.Services.AddMemoryCache();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ResilientCache>();
        builder.Services.AddSingleton<OutageLog>();
        builder.Services.AddSingleton<GatewayReports>();
        builder.Services.AddSingleton<EndpointHolder>();
        builder.Services.AddSingleton<ScalerMetrics>();
        builder.Services.AddSingleton<BacklogService>();
        builder.Services.AddHostedService<BackgroundRefresh>();
        builder.Services.AddSingleton<IQueueSource>(_ => new AzureQueueSource(options.OutboundTimeout));
        builder.Services.AddSingleton<IClusterSource>(_ =>
            new KubernetesClusterSource(KubernetesClusterSource.CreateClient(options.KubernetesBaseUrl, options.OutboundTimeout)));
        builder.Services.AddSingleton<IPodStatsSource>(_ =>
            new HttpPodStatsSource(new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(2) }) { Timeout = options.OutboundTimeout }, options.PodStatsKey));
        services?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapGrpcService<ExternalScalerService>();
        app.MapGet("/metrics", (ScalerMetrics m) => Results.Text(m.Render(), "text/plain; version=0.0.4"));
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapPut(GatewayReportPath.Template, GatewayReportEndpoint.HandleAsync);
        app.Services.GetRequiredService<IServer>(); // resolves Kestrel now so that configuration errors surface at build
        app.Lifetime.ApplicationStarted.Register(() => app.Services.GetRequiredService<EndpointHolder>().Set(grpcListen, metricsListen));
        return app;
    }

    /// <summary>Starts a scaler on loopback with ephemeral ports, for tests and benchmarks.</summary>
    public static async Task<RunningScaler> StartAsync(ScalerOptions options, Action<IServiceCollection>? services = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ListenAddress = "127.0.0.1";
        options.GrpcPort = 0;
        options.MetricsPort = 0;
        var app = Build(["--Logging:LogLevel:Default=Warning"], options, s =>
        {
            s.AddSingleton<IHostLifetime, EmbeddedLifetime>();
            services?.Invoke(s);
        });
        await app.StartAsync(cancellationToken);
        var (grpc, metrics) = app.Services.GetRequiredService<EndpointHolder>().Get();
        var scheme = string.IsNullOrEmpty(options.TlsCertificatePath) ? "http" : "https";
        return new RunningScaler(app, new Uri($"{scheme}://{grpc}"), new Uri($"http://{metrics}"));
    }

    private static X509Certificate2 LoadCertificate(ScalerOptions o) =>
        !string.IsNullOrEmpty(o.TlsKeyPath)
            ? X509Certificate2.CreateFromPemFile(o.TlsCertificatePath!, o.TlsKeyPath)
            : X509CertificateLoader.LoadPkcs12FromFile(o.TlsCertificatePath!, o.TlsCertificatePassword);
}

/// <summary>Kestrel writes the bound endpoint back into the listen options; this carries them out of the builder.</summary>
internal sealed class EndpointHolder
{
    private ListenOptions? _grpc;
    private ListenOptions? _metrics;

    public void Set(ListenOptions? grpc, ListenOptions? metrics) => (_grpc, _metrics) = (grpc, metrics);

    public (IPEndPoint Grpc, IPEndPoint Metrics) Get() =>
        (_grpc?.IPEndPoint ?? throw new InvalidOperationException("gRPC endpoint not bound"),
         _metrics?.IPEndPoint ?? throw new InvalidOperationException("metrics endpoint not bound"));
}

/// <summary>
/// The lifetime of a scaler hosted inside another process (tests, benchmarks): unlike the console lifetime it takes
/// no SIGTERM/Ctrl+C handlers, which would otherwise keep the host process from exiting on a signal.
/// </summary>
public sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
