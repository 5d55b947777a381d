namespace Kiln.LocalCluster;

/// <summary>
/// The app's Deployment as the stand-in runs it: its pods' labels, GPUs and environment (the variables KEDA resolves
/// FromEnv keys against), how a pod's process is started, and the termination grace period.
/// </summary>
public sealed record LocalDeployment
{
    public required string Namespace { get; init; }
    public required string Name { get; init; }
    public required IReadOnlyDictionary<string, string> Labels { get; init; }

    /// <summary>GPUs each pod requests: the tensor-parallel size.</summary>
    public int GpusPerPod { get; init; } = 1;

    public string GpuResource { get; init; } = "nvidia.com/gpu";

    /// <summary>The container's environment, as the manifest would set it.</summary>
    public required IReadOnlyDictionary<string, string> Environment { get; init; }

    /// <summary>The app's command line after <c>dotnet</c>, for a pod listening on <c>http://{ip}:{port}</c>.</summary>
    public required Func<string, int, IReadOnlyList<string>> Command { get; init; }

    /// <summary>The port every pod listens on (each on its own loopback address, like pods on their own IPs).</summary>
    public required int Port { get; init; }

    public string ReadinessPath { get; init; } = "/api/ready";

    public TimeSpan TerminationGracePeriod { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>A node and the GPUs it offers.</summary>
public sealed record LocalNode(string Name, int Gpus);
