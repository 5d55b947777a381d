using System.Diagnostics;
using System.Globalization;
using System.Net;
using Azure.Storage.Queues;
using Grpc.Net.Client;
using k8s;
using k8s.Models;
using Kiln.LocalCluster;
using Kiln.Scaler;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Service;

namespace Kiln.ScalerSim;

/// <summary>
/// One scaler, many ScaledObjects: GetMetrics latency through a real gRPC client, with a real Azurite queue per
/// object, a loopback Kubernetes API and loopback pod stats. Two modes: every call re-reads its queue and pods
/// (as KEDA's 15-30 s polls do), and calls within the 250 ms refresh interval (served from memory).
/// </summary>
public static class GetMetricsBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        int objects = Arg(args, "--objects", 100), calls = Arg(args, "--calls", 2000), concurrency = Arg(args, "--concurrency", 8);
        await using var azurite = await AzuriteProcess.StartAsync();
        await using var api = await StartFakeApiAsync(objects);
        for (var i = 0; i < objects; i++)
        {
            var q = new QueueClient(azurite.ConnectionString, $"jobs-{i}");
            await q.CreateAsync();
            for (var m = 0; m < 5; m++)
            {
                await q.SendMessageAsync($$$"""{"id":"{{{i}}}-{{{m}}}","request":{"messages":[{"role":"user","content":"hello there"}],"max_tokens":{{{100 + m}}}}}""");
            }
        }

        var port = new Uri(api.Urls.First()).Port;
        Console.WriteLine($"{objects} ScaledObjects, {calls} GetMetrics calls per mode, {concurrency} concurrent callers, {Environment.ProcessorCount} cores");
        Console.WriteLine("| mode | p50 ms | p90 ms | p99 ms | max ms | calls/s |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        var rate = Arg(args, "--rate", 50);
        var modes = new (string Mode, ScalerOptions Options, double Rate)[]
        {
            ("no background refresh: every poll reads its queue and pods; back to back", new ScalerOptions { PollMaxAgeMs = 0, BackgroundRefreshMs = 0 }, 0),
            ("default (readings renewed every 1 s in the background); back to back", new ScalerOptions(), 0),
            ($"default; paced at {rate} calls/s (KEDA: 100 objects x 2 calls / 15 s = 13/s)", new ScalerOptions(), rate),
        };
        foreach (var (mode, options, pace) in modes)
        {
            options.KubernetesBaseUrl = api.Urls.First();
            await using var scaler = await ScalerHost.StartAsync(options);
            using var channel = GrpcChannel.ForAddress(scaler.GrpcAddress);
            var client = new ExternalScaler.ExternalScalerClient(channel);
            var refs = Enumerable.Range(0, objects).Select(i => Ref(i, port, azurite.ConnectionString)).ToArray();
            foreach (var r in refs)
            {
                await client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = r, MetricName = "token-backlog" }); // warm-up
            }

            await Task.Delay(TimeSpan.FromSeconds(2)); // the background refresh has picked every object up

            var latencies = new double[calls];
            var counter = -1;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                int n;
                while ((n = Interlocked.Increment(ref counter)) < calls)
                {
                    if (pace > 0 && TimeSpan.FromSeconds(n / pace) - clock.Elapsed is { Ticks: > 0 } ahead)
                    {
                        await Task.Delay(ahead);
                    }

                    var start = Stopwatch.GetTimestamp();
                    await client.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = refs[n % objects], MetricName = "token-backlog" });
                    latencies[n] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            })));
            var elapsed = clock.Elapsed.TotalSeconds;
            Array.Sort(latencies);
            double P(double q) => latencies[Math.Min(calls - 1, (int)Math.Ceiling(q * calls) - 1)];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {mode} | {P(0.5):F2} | {P(0.9):F2} | {P(0.99):F2} | {latencies[^1]:F2} | {calls / elapsed:F0} |"));
        }

        return 0;
    }

    private static ScaledObjectRef Ref(int i, int statsPort, string connectionString)
    {
        var r = new ScaledObjectRef { Name = $"model-{i}", Namespace = "kiln" };
        r.ScalerMetadata.Add(new Dictionary<string, string>
        {
            ["queueName"] = $"jobs-{i}",
            ["connectionFromEnv"] = connectionString, // as KEDA sends it: the value, resolved from the target's environment
            ["tpSize"] = "1",
            ["targetBacklogPerReplica"] = "1000",
            ["podSelector"] = $"app=model-{i}",
            ["namespace"] = "kiln",
            ["podStatsPort"] = $"{statsPort}",
            ["podStatsPath"] = $"/api/stats/{i}",
        });
        return r;
    }

    // A loopback Kubernetes API (nodes, 2 running pods per object on 127.0.0.1) that also answers the pods' stats.
    private static async Task<WebApplication> StartFakeApiAsync(int objects)
    {
        var nodes = new V1NodeList
        {
            Items = [.. Enumerable.Range(0, 32).Select(n => new V1Node
            {
                Metadata = new V1ObjectMeta { Name = $"gpu-{n}" },
                Status = new V1NodeStatus
                {
                    Allocatable = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new("8") },
                    Conditions = [new V1NodeCondition { Type = "Ready", Status = "True" }],
                },
            })],
        };
        var pods = new V1PodList
        {
            Items = [.. Enumerable.Range(0, objects * 2).Select(p => new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = $"model-{p / 2}-{p % 2}", NamespaceProperty = "kiln", Labels = new Dictionary<string, string> { ["app"] = $"model-{p / 2}" } },
                Spec = new V1PodSpec
                {
                    NodeName = $"gpu-{p % 32}",
                    Containers = [new V1Container { Name = "f", Resources = new V1ResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new("1") } } }],
                },
                Status = new V1PodStatus { Phase = "Running", PodIP = "127.0.0.1", Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }] },
            })],
        };
        var nodesJson = KubernetesJson.Serialize(nodes);
        var podsJson = KubernetesJson.Serialize(pods);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapGet("/api/v1/nodes", () => Results.Text(nodesJson, "application/json"));
        app.MapGet("/api/v1/pods", () => Results.Text(podsJson, "application/json"));
        app.MapGet("/api/stats/{i}", (int i) => Results.Json(new { waitingRequests = 1, runningSequences = 2, tokenBacklog = 100 + i }));
        await app.StartAsync();
        return app;
    }

    private static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
