using System.Net;
using System.Net.Sockets;
using Kiln.Gateway;
using Kiln.Scaler;
using Kiln.Scaler.Service;

namespace Kiln.LocalCluster;

/// <summary>What the local cluster runs: nodes and their GPUs, the pods' tensor-parallel size, the loops' pace.</summary>
public sealed record LoopbackClusterOptions
{
    /// <summary>GPUs are counted, not used: the pods run the demo model on the CPU.</summary>
    public IReadOnlyList<LocalNode> Nodes { get; init; } = [new("gpu-a", 4), new("gpu-b", 2)];

    public int TpSize { get; init; } = 2;

    public KedaTiming Timing { get; init; } = new();

    /// <summary>The ScaledObject's targetBacklogPerReplica, sized for the demo model on a laptop.</summary>
    public double TargetBacklogPerReplica { get; init; } = 2048;

    /// <summary>Extra app settings for every pod (<c>Kiln:MaxSequences=4</c>, ...).</summary>
    public IReadOnlyList<string> AppSettings { get; init; } = [];

    public TimeSpan TerminationGracePeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The API key clients send and the metrics key the scaler and the gateway read pod stats with, set as
    /// deploy/*.yaml set them from the Secret kiln-api-keys (the pods are on loopback and would start without).
    /// </summary>
    public string ApiKey { get; init; } = $"local-{Guid.NewGuid():N}";

    public string MetricsKey { get; init; } = $"local-metrics-{Guid.NewGuid():N}";

    /// <summary>Where each pod's output goes, one file per pod.</summary>
    public string LogDirectory { get; init; } = Path.Combine(Path.GetTempPath(), $"kiln-local-{Environment.ProcessId}");
}

/// <summary>
/// The whole scale-to-zero loop on loopback: Azurite (queues, blobs), the scaler and the gateway (in-process, on their
/// real gRPC and HTTP endpoints), a stand-in Kubernetes API whose pods are real app processes, and a stand-in KEDA
/// with its HPA driving the scaler over gRPC with the repository's own ScaledObject (deploy/scaledobject.yaml) as
/// KEDA would read it. Clients call the gateway, as the cluster's Service sends them to it.
/// </summary>
public sealed class LoopbackCluster : IAsyncDisposable
{
    public const string Namespace = "kiln";
    public const string AppName = "kiln-llama";

    private readonly List<IAsyncDisposable> _parts = [];

    private LoopbackCluster(LoopbackClusterOptions options)
    {
        Options = options;
        Events = new ClusterEvents(TimeProvider.System);
    }

    public LoopbackClusterOptions Options { get; }
    public ClusterEvents Events { get; }
    public AzuriteProcess Storage { get; private set; } = null!;
    public RunningScaler Scaler { get; private set; } = null!;
    public LocalKubernetes Kubernetes { get; private set; } = null!;
    public LocalKeda Keda { get; private set; } = null!;
    public LocalDeployment App { get; private set; } = null!;
    public RunningGateway Gateway { get; private set; } = null!;

    /// <summary>The app's queue of jobs (as the manifest's ScaledObject names it).</summary>
    public string JobQueue { get; private set; } = "";

    public static async Task<LoopbackCluster> StartAsync(LoopbackClusterOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var cluster = new LoopbackCluster(options);
        try
        {
            await cluster.StartPartsAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task StartPartsAsync(CancellationToken ct)
    {
        var root = AzuriteProcess.RepoRoot();
        var so = ScaledObjectManifest.Load(Path.Combine(root, "deploy", "scaledobject.yaml"));
        var trigger = so.Spec.Triggers.Single();
        JobQueue = trigger.Metadata["queueName"];

        Storage = await AzuriteProcess.StartAsync(ct);
        _parts.Add(Storage);

        var port = FreePortOnEveryLoopbackAddress();
        var appDll = AppDll(root);
        App = new LocalDeployment
        {
            Namespace = Namespace,
            Name = AppName,
            Labels = new Dictionary<string, string> { ["app"] = AppName },
            GpusPerPod = Options.TpSize,
            Port = port,
            TerminationGracePeriod = Options.TerminationGracePeriod,
            // The container's environment as deploy/functions.yaml sets it; AzureWebJobsStorage is what the
            // ScaledObject's connectionFromEnv names, resolved here as KEDA resolves it.
            Environment = new Dictionary<string, string>
            {
                ["AzureWebJobsStorage"] = Storage.ConnectionString,
                ["Kiln__JobQueue"] = JobQueue,
                ["Kiln__KvCacheBytes"] = "33554432",
                ["Kiln__Threads"] = "1",
                ["Kiln__DrainTimeoutSeconds"] = $"{Math.Max(1, (int)Options.TerminationGracePeriod.TotalSeconds - 10)}",
                ["Kiln__ApiKeys"] = Options.ApiKey,
                ["Kiln__MetricsKeys"] = Options.MetricsKey,
                ["DOTNET_gcServer"] = "0",
            },
            Command = (ip, p) => [appDll, $"--urls=http://{ip}:{p}", .. Options.AppSettings.Select(s => "--" + s)],
        };

        Kubernetes = new LocalKubernetes(App, Options.Nodes, Events, TimeProvider.System, Options.LogDirectory);
        await Kubernetes.StartAsync(ct);
        _parts.Add(Kubernetes);

        Scaler = await ScalerHost.StartAsync(new ScalerOptions
        {
            KubernetesBaseUrl = Kubernetes.BaseUrl.ToString(),
            RefreshIntervalMs = 200,
            PollMaxAgeMs = 500,
            BackgroundRefreshMs = 250,
            ClusterRefreshMs = 200,
            StreamPollIntervalMs = 250,
            OutboundTimeoutMs = 5000,
            PodStatsKey = Options.MetricsKey,
        }, cancellationToken: ct);
        _parts.Add(Scaler);

        Gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            KubernetesBaseUrl = Kubernetes.BaseUrl.ToString(),
            Namespace = Namespace,
            PodSelector = $"app={AppName}",
            PodPort = port,
            ScalerUrl = Scaler.MetricsAddress.ToString(),
            ScaledObjectName = so.Metadata.Name,
            DiscoveryIntervalMs = 250,
            StatsIntervalMs = 250,
            ReportIntervalMs = 500,
            MaxHoldSeconds = 180,
            ApiKeys = Options.ApiKey,
            StatsKey = Options.MetricsKey,
        }, cancellationToken: ct);
        _parts.Add(Gateway);

        // The manifest's trigger, pointed at this machine: the pods' port, this run's TP size and target.
        trigger.Metadata["podStatsPort"] = $"{port}";
        trigger.Metadata["tpSize"] = $"{Options.TpSize}";
        trigger.Metadata["targetBacklogPerReplica"] = Options.TargetBacklogPerReplica.ToString(System.Globalization.CultureInfo.InvariantCulture);
        trigger.Metadata["stalenessSeconds"] = "30";
        so.Metadata.NamespaceProperty = Namespace;
        Keda = new LocalKeda(so, Scaler.GrpcAddress, Kubernetes, App, Options.Timing, Events, TimeProvider.System);
        await Keda.StartAsync(ct);
        _parts.Add(Keda);
    }

    /// <summary>The built app next to this program's own configuration (Release or Debug).</summary>
    private static string AppDll(string root)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        var dll = Path.Combine(root, "functions", "Kiln.Functions", "bin", configuration, "net10.0", "Kiln.Functions.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"the app is not built: {dll} (dotnet build Functions.sln -c {configuration})");
    }

    /// <summary>
    /// One port for every pod, each on its own 127.0.0.x (pods share a port on their own IPs). Taken below the
    /// ephemeral range, so that no outgoing connection holds it, and checked free on the wildcard address.
    /// </summary>
    private static int FreePortOnEveryLoopbackAddress()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var port = Random.Shared.Next(20000, 30000);
            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(new IPEndPoint(IPAddress.Any, port));
                return port;
            }
            catch (SocketException)
            {
            }
        }

        throw new InvalidOperationException("no free port in 20000-30000");
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _parts.Count - 1; i >= 0; i--)
        {
            await _parts[i].DisposeAsync();
        }
    }
}
