using Azure.Storage.Blobs;

namespace Kiln.LocalCluster;

/// <summary>
/// <c>bash deploy/local/run.sh [demo|serve]</c>: <c>demo</c> runs the issue's scenarios one after another and prints
/// their figures; <c>serve</c> brings the loop up and leaves it running for a user's own calls (Ctrl+C stops it).
/// </summary>
public static class LocalClusterCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var mode = args.Length > 0 ? args[0] : "demo";
        if (mode is not ("demo" or "serve"))
        {
            await Console.Error.WriteLineAsync("usage: run.sh [demo|serve]");
            return 2;
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var options = new LoopbackClusterOptions
        {
            Nodes = [new("gpu-a", 4), new("gpu-b", 2)],
            TpSize = 2,
            TargetBacklogPerReplica = 256,
            AppSettings = ["Kiln:MaxSequences=4"],
            Timing = new KedaTiming { PollingInterval = TimeSpan.FromSeconds(5), CooldownPeriod = TimeSpan.FromSeconds(8) },
        };
        await using var cluster = await LoopbackCluster.StartAsync(options, stop.Token);
        cluster.Events.Added += e => Console.WriteLine($"  {e.At:HH:mm:ss.fff} {e.Kind,-16} {e.Detail}");
        Console.WriteLine($"Gateway (what clients call): {cluster.Gateway.Address}api/v1/chat/completions, with Authorization: Bearer {options.ApiKey}");
        Console.WriteLine($"Scaler: gRPC {cluster.Scaler.GrpcAddress}, HTTP {cluster.Scaler.MetricsAddress}");
        Console.WriteLine($"Kubernetes API stand-in: {cluster.Kubernetes.BaseUrl}  (nodes: {string.Join(", ", options.Nodes.Select(n => $"{n.Name} {n.Gpus} GPUs"))}; TP {options.TpSize})");
        Console.WriteLine($"Storage (Azurite): queue {cluster.JobQueue}; pod logs in {options.LogDirectory}");
        Console.WriteLine($"KEDA stand-in: polling {options.Timing.PollingInterval.TotalSeconds:F0} s, cooldown {options.Timing.CooldownPeriod.TotalSeconds:F0} s, HPA sync {options.Timing.HpaSyncPeriod.TotalSeconds:F0} s");
        if (mode == "serve")
        {
            Console.WriteLine("Serving; Ctrl+C stops everything.");
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            return 0;
        }

        var ct = stop.Token;
        Console.WriteLine("\n1. An HTTP chat call through the gateway at zero replicas:");
        var wake = await Scenarios.ChatFromZeroAsync(cluster, ct);
        Console.WriteLine($"=> {wake}");
        var idle = await LoadScenarios.IdleToZeroAsync(cluster, TimeSpan.FromMinutes(2), ct);
        Console.WriteLine($"=> idle: back to zero {idle.TotalSeconds:F1} s after the answer (cooldown {options.Timing.CooldownPeriod.TotalSeconds:F0} s, polling {options.Timing.PollingInterval.TotalSeconds:F0} s)");

        Console.WriteLine("\n2. A burst of 30 queue jobs (3 TP groups free):");
        var burst = await LoadScenarios.QueueBurstAsync(cluster, 30, 64, TimeSpan.FromMinutes(6), ct);
        Console.WriteLine($"=> {burst}");

        Console.WriteLine("\n3. A pod stopped mid-load (16 jobs and 8 streamed calls):");
        await LoadScenarios.EnqueueAsync(cluster, "load", 16, 96, ct);
        await LoadScenarios.WaitUntilAsync(() => Task.FromResult(cluster.Kubernetes.ReadyReplicas >= 2), TimeSpan.FromMinutes(3), cluster, ct);
        var stopped = await LoadScenarios.StopPodMidLoadAsync(cluster, 8, ct);
        var results = new BlobContainerClient(cluster.Storage.ConnectionString, LoadScenarios.ResultContainer);
        await LoadScenarios.WaitUntilAsync(async () => (await LoadScenarios.ResultsAsync(results, ct)).Keys.Count(k => k.StartsWith("load-", StringComparison.Ordinal)) >= 16, TimeSpan.FromMinutes(4), cluster, ct);
        Console.WriteLine($"=> {stopped}; all 16 jobs have one result");

        var last = await LoadScenarios.IdleToZeroAsync(cluster, TimeSpan.FromMinutes(2), ct);
        Console.WriteLine($"\n4. Idle: back to zero after {last.TotalSeconds:F1} s.");
        return 0;
    }
}
