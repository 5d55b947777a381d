using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Grpc.Net.Client;
using Kiln.Scaler;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Service;
using Kiln.Scaler.Sources;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Scaler;

/// <summary>Pods' stats endpoints: one server listening on several loopback addresses (one per fake pod IP), same port.</summary>
public sealed class FakePodStats : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakePodStats(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }
    public ConcurrentDictionary<string, PodStatsDocument> ByIp { get; } = new();

    /// <summary>When set, reads without <c>Authorization: Bearer</c> and this key get 401, as a keyed app answers.</summary>
    public string? RequiredKey { get; set; }

    /// <summary>The Authorization header of each read ("" for none).</summary>
    public ConcurrentQueue<string> Authorizations { get; } = new();

    public static readonly string[] Ips = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];

    public static async Task<FakePodStats> StartAsync()
    {
        var probe = new TcpListener(IPAddress.Parse(Ips[0]), 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Kiln.Scaler.EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k =>
        {
            foreach (var ip in Ips)
            {
                k.Listen(IPAddress.Parse(ip), port);
            }
        });
        var app = builder.Build();
        FakePodStats? self = null;
        app.MapGet("/api/stats", (HttpContext c) =>
        {
            string authorization = c.Request.Headers.Authorization.ToString();
            self!.Authorizations.Enqueue(authorization);
            if (self.RequiredKey is { } key && authorization != "Bearer " + key)
            {
                return Results.Unauthorized();
            }

            return self.ByIp.TryGetValue(c.Connection.LocalIpAddress!.ToString(), out var s) ? Results.Json(s) : Results.NotFound();
        });
        await app.StartAsync();
        self = new FakePodStats(app, port);
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A queue source the test sets by hand (tests that are about Kubernetes, capping or caching need no Azurite).</summary>
public sealed class FakeQueueSource : IQueueSource
{
    public QueueSample Sample { get; set; }

    /// <summary>When set, every read fails with it, as a storage outage or a revoked key makes the real source fail.</summary>
    public Exception? Failure { get; set; }

    public Task<QueueSample> ReadAsync(string connectionString, string queueName, int defaultMaxTokens, CancellationToken cancellationToken) =>
        Failure is { } failure ? Task.FromException<QueueSample>(failure) : Task.FromResult(Sample);
}

/// <summary>
/// The scaler on loopback with a fake Kubernetes API and fake pod stats behind it, and a real gRPC client in front
/// (HTTP/2 cleartext), as KEDA talks to it.
/// </summary>
public sealed class ScalerHarness : IAsyncDisposable
{
    private ScalerHarness(FakeKubernetesApi kube, FakePodStats stats, RunningScaler scaler, GrpcChannel channel, string connectionString)
    {
        Kube = kube;
        Stats = stats;
        Scaler = scaler;
        Channel = channel;
        Client = new ExternalScaler.ExternalScalerClient(channel);
        ConnectionString = connectionString;
    }

    public FakeKubernetesApi Kube { get; }
    public FakePodStats Stats { get; }
    public RunningScaler Scaler { get; }
    public GrpcChannel Channel { get; }
    public ExternalScaler.ExternalScalerClient Client { get; }

    /// <summary>
    /// The storage connection string, sent as KEDA sends it: the value it resolved for <c>connectionFromEnv</c> from
    /// the scale target's environment (../shared/docs/keda-external-scaler.md).
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>Starts the fakes, the scaler and the client.</summary>
    /// <param name="connectionString">The storage connection string (Azurite's), or null to use <paramref name="queue"/>.</param>
    /// <param name="queue">A fake queue source replacing Azure's, or null.</param>
    /// <param name="configure">Changes to the scaler's options (the defaults here refresh on every call).</param>
    /// <param name="services">Further service changes (a TimeProvider, a log capture).</param>
    public static async Task<ScalerHarness> StartAsync(
        string? connectionString = null, FakeQueueSource? queue = null, Action<ScalerOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var kube = await FakeKubernetesApi.StartAsync();
        var stats = await FakePodStats.StartAsync();
        var options = new ScalerOptions
        {
            KubernetesBaseUrl = kube.BaseUrl.ToString(),
            OutboundTimeoutMs = 5000, // generous: the first calls of a cold process are slow on 2 busy cores
            RefreshIntervalMs = 0,
            PollMaxAgeMs = 0, // every poll reads its sources: the tests change them between calls
            BackgroundRefreshMs = 0,
            ClusterRefreshMs = 0,
            StreamPollIntervalMs = 100,
        };
        configure?.Invoke(options);
        var scaler = await ScalerHost.StartAsync(options, s =>
        {
            if (queue is not null)
            {
                s.AddSingleton<IQueueSource>(queue);
            }

            services?.Invoke(s);
        });
        var channel = GrpcChannel.ForAddress(scaler.GrpcAddress);
        return new ScalerHarness(kube, stats, scaler, channel, connectionString ?? "UseDevelopmentStorage=true");
    }

    /// <summary>Valid metadata for a ScaledObject "kiln/llama" (selector app=kiln-llama), with overrides (null removes a key).</summary>
    public ScaledObjectRef Ref(string queueName = "jobs", params (string Key, string? Value)[] overrides)
    {
        var md = new Dictionary<string, string>
        {
            ["scalerAddress"] = "kiln-scaler.kiln.svc:6000",
            ["queueName"] = queueName,
            ["connectionFromEnv"] = ConnectionString,
            ["tpSize"] = "2",
            ["targetBacklogPerReplica"] = "1000",
            ["podSelector"] = "app=kiln-llama",
            ["namespace"] = "kiln",
            ["podStatsPort"] = $"{Stats.Port}",
            ["defaultMaxTokens"] = "100",
        };
        foreach (var (k, v) in overrides)
        {
            if (v is null)
            {
                md.Remove(k);
            }
            else
            {
                md[k] = v;
            }
        }

        var r = new ScaledObjectRef { Name = "llama", Namespace = "kiln" };
        r.ScalerMetadata.Add(md);
        return r;
    }

    public static readonly Dictionary<string, string> AppLabels = new() { ["app"] = "kiln-llama", ["pod-template-hash"] = "7d9f" };

    public async Task<double> MetricAsync(ScaledObjectRef r) =>
        (await Client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = r, MetricName = "token-backlog" })).MetricValues.Single().MetricValueFloat;

    /// <summary>
    /// The first metric, retried while Unavailable: with a short outbound timeout the very first calls (JIT, first
    /// connections) can miss it on a busy machine, and a test of timeouts needs one good value first.
    /// </summary>
    public async Task<double> FirstMetricAsync(ScaledObjectRef r)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await MetricAsync(r);
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable && attempt < 20)
            {
                await Task.Delay(200);
            }
        }
    }

    public async Task<string> ScrapeAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(new Uri(Scaler.MetricsAddress, "/metrics"));
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await Scaler.DisposeAsync();
        await Stats.DisposeAsync();
        await Kube.DisposeAsync();
    }
}
