namespace Kiln.LocalCluster;

/// <summary>`dotnet run --project deploy/local/Kiln.LocalCluster`: brings the loop up and prints what happens.</summary>
public static class LocalClusterCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var options = new LoopbackClusterOptions();
        await using var cluster = await LoopbackCluster.StartAsync(options, stop.Token);
        cluster.Events.Added += e => Console.WriteLine($"{e.At:HH:mm:ss.fff} {e.Kind,-16} {e.Detail}");
        Console.WriteLine($"Kubernetes API stand-in: {cluster.Kubernetes.BaseUrl}");
        Console.WriteLine($"Scaler: gRPC {cluster.Scaler.GrpcAddress}, HTTP {cluster.Scaler.MetricsAddress}");
        Console.WriteLine($"Storage: {cluster.Storage.ConnectionString}");
        Console.WriteLine($"Pod logs: {options.LogDirectory}");
        Console.WriteLine("Ctrl+C stops everything.");
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }
}
