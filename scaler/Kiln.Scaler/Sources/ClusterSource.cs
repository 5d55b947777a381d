using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Kiln.Scaler.Scaling;

namespace Kiln.Scaler.Sources;

public sealed record NodeInfo(string Name, bool Schedulable, bool Ready, IReadOnlyDictionary<string, decimal> Allocatable);

public sealed record PodInfo(
    string Namespace, string Name, string? NodeName, string Phase, string? PodIp, bool Ready, bool Terminating,
    IDictionary<string, string> Labels, IReadOnlyDictionary<string, decimal> Requests);

/// <summary>
/// Nodes and non-terminated pods, read once and shared by every ScaledObject (two list calls per refresh, whatever
/// the number of ScaledObjects); the per-object views (its pods, the free TP groups) are computed from it.
/// </summary>
public sealed class ClusterSnapshot(IReadOnlyList<NodeInfo> nodes, IReadOnlyList<PodInfo> pods)
{
    private readonly ConcurrentDictionary<(string, int), int> _freeGroups = new();

    public IReadOnlyList<NodeInfo> Nodes { get; } = nodes;
    public IReadOnlyList<PodInfo> Pods { get; } = pods;

    /// <summary>The replicas that exist for a selector: matching pods that are not terminating (Pending included).</summary>
    public IEnumerable<PodInfo> PodsOf(string ns, LabelSelector selector) =>
        Pods.Where(p => p.Namespace == ns && !p.Terminating && p.Phase is "Pending" or "Running" or "Unknown" && selector.Matches(p.Labels));

    /// <summary>
    /// Σ over schedulable, Ready nodes of floor((allocatable − requested by the node's pods) / tpSize), less the groups
    /// that pods waiting to be scheduled will take (else each would be counted both as a replica and as free room).
    /// </summary>
    public int FreeGroups(string resource, int tpSize) => _freeGroups.GetOrAdd((resource, tpSize), k =>
    {
        var (res, tp) = k;
        var requestedByNode = new Dictionary<string, decimal>(StringComparer.Ordinal);
        var unscheduledGroups = 0;
        foreach (var pod in Pods)
        {
            var r = pod.Requests.GetValueOrDefault(res);
            if (r <= 0)
            {
                continue;
            }

            if (pod.NodeName is null)
            {
                unscheduledGroups += (int)Math.Ceiling(r / tp);
            }
            else
            {
                requestedByNode[pod.NodeName] = requestedByNode.GetValueOrDefault(pod.NodeName) + r;
            }
        }

        var free = 0;
        foreach (var node in Nodes)
        {
            if (node.Schedulable && node.Ready)
            {
                var alloc = (long)Math.Floor(node.Allocatable.GetValueOrDefault(res));
                var used = (long)Math.Ceiling(requestedByNode.GetValueOrDefault(node.Name));
                free += ScalingMath.FreeGroupsOnNode(alloc, used, tp);
            }
        }

        return Math.Max(0, free - unscheduledGroups);
    });
}

public interface IClusterSource
{
    Task<ClusterSnapshot> ReadAsync(CancellationToken cancellationToken);
}

/// <summary>Reads nodes and pods with KubernetesClient (a configured base URL, or the default config chain).</summary>
public sealed class KubernetesClusterSource(IKubernetes client) : IClusterSource
{
    // Terminated pods hold no resources; the API server filters them.
    private const string NotTerminated = "status.phase!=Succeeded,status.phase!=Failed";

    /// <summary>
    /// A configured base URL wins; otherwise the client library's own default chain
    /// (<see cref="KubernetesClientConfiguration.BuildDefaultConfig"/>): <c>$KUBECONFIG</c> (a path list), then
    /// <c>~/.kube/config</c>, then the in-cluster service account, as kubectl resolves it.
    /// </summary>
    public static IKubernetes CreateClient(string? baseUrl, TimeSpan timeout)
    {
        var config = !string.IsNullOrEmpty(baseUrl)
            ? new KubernetesClientConfiguration { Host = baseUrl }
            : KubernetesClientConfiguration.BuildDefaultConfig();
        config.HttpClientTimeout = timeout;
        return new Kubernetes(config);
    }

    public async Task<ClusterSnapshot> ReadAsync(CancellationToken cancellationToken)
    {
        // resourceVersion=0: served from the API server's watch cache, cheap for the server.
        var nodesTask = client.CoreV1.ListNodeAsync(resourceVersion: "0", cancellationToken: cancellationToken);
        var podsTask = client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: NotTerminated, resourceVersion: "0", cancellationToken: cancellationToken);
        var nodes = await nodesTask;
        var pods = await podsTask;
        return new ClusterSnapshot(
            [.. (nodes.Items ?? []).Select(ToNode)],
            [.. (pods.Items ?? []).Where(p => p.Status?.Phase is not ("Succeeded" or "Failed")).Select(ToPod)]);
    }

    private static NodeInfo ToNode(V1Node n) => new(
        n.Metadata?.Name ?? "",
        n.Spec?.Unschedulable != true,
        n.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true,
        Quantities(n.Status?.Allocatable));

    private static PodInfo ToPod(V1Pod p) => new(
        p.Metadata?.NamespaceProperty ?? "",
        p.Metadata?.Name ?? "",
        string.IsNullOrEmpty(p.Spec?.NodeName) ? null : p.Spec.NodeName,
        p.Status?.Phase ?? "Unknown",
        string.IsNullOrEmpty(p.Status?.PodIP) ? null : p.Status.PodIP,
        p.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true,
        p.Metadata?.DeletionTimestamp is not null,
        p.Metadata?.Labels ?? new Dictionary<string, string>(),
        EffectiveRequests(p.Spec));

    // Kubernetes' effective request: max(sum over containers, max over init containers); an extended resource's
    // limit is its request when the request is absent.
    private static Dictionary<string, decimal> EffectiveRequests(V1PodSpec? spec)
    {
        var sum = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var c in spec?.Containers ?? [])
        {
            foreach (var (k, v) in Requests(c))
            {
                sum[k] = sum.GetValueOrDefault(k) + v;
            }
        }

        foreach (var c in spec?.InitContainers ?? [])
        {
            foreach (var (k, v) in Requests(c))
            {
                sum[k] = Math.Max(sum.GetValueOrDefault(k), v);
            }
        }

        return sum;
    }

    private static Dictionary<string, decimal> Requests(V1Container c)
    {
        var r = Quantities(c.Resources?.Limits);
        foreach (var (k, v) in Quantities(c.Resources?.Requests))
        {
            r[k] = v;
        }

        return r;
    }

    private static Dictionary<string, decimal> Quantities(IDictionary<string, ResourceQuantity>? q)
    {
        var d = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var (k, v) in q ?? new Dictionary<string, ResourceQuantity>())
        {
            d[k] = v.ToDecimal();
        }

        return d;
    }
}
