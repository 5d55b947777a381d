using k8s;
using k8s.Models;

namespace Kiln.Gateway;

/// <summary>
/// Pods from the Kubernetes API: those in the namespace matching the selector that have an IP, are not being
/// deleted and whose Ready condition is True (the kubelet's readiness probe, i.e. the app's /api/ready).
/// </summary>
public sealed class KubernetesPodDiscovery(IKubernetes client, string ns, string selector, int port) : IPodDiscovery
{
    public string Source => $"Kubernetes pods in {ns} matching {selector}";

    /// <summary>The client: <paramref name="baseUrl"/> when set, else in-cluster, else $KUBECONFIG or ~/.kube/config.</summary>
    public static IKubernetes CreateClient(string? baseUrl, TimeSpan timeout)
    {
        KubernetesClientConfiguration config;
        try
        {
            config = string.IsNullOrWhiteSpace(baseUrl)
                ? KubernetesClientConfiguration.BuildDefaultConfig()
                : new KubernetesClientConfiguration { Host = baseUrl.Trim() };
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException)
        {
            throw new InvalidOperationException($"Gateway:KubernetesBaseUrl is not set and no in-cluster or kubeconfig configuration was found: {e.Message}", e);
        }

        config.HttpClientTimeout = timeout;
        return new Kubernetes(config);
    }

    public async Task<IReadOnlyList<PodCandidate>> ListAsync(CancellationToken cancellationToken)
    {
        // resourceVersion=0: served from the API server's watch cache, cheap for the server at one list a second.
        var list = await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selector, resourceVersion: "0", cancellationToken: cancellationToken).ConfigureAwait(false);
        return [.. (list.Items ?? []).Where(IsCandidate).Select(p => new PodCandidate(p.Metadata.Name, BaseUrl(p.Status.PodIP, port)))];
    }

    public static bool IsCandidate(V1Pod pod) =>
        pod?.Metadata?.Name is not null
        && !string.IsNullOrEmpty(pod.Status?.PodIP)
        && pod.Metadata.DeletionTimestamp is null
        && (pod.Status.Conditions ?? []).Any(c => c.Type == "Ready" && c.Status == "True");

    private static Uri BaseUrl(string ip, int port) =>
        new(ip.Contains(':', StringComparison.Ordinal) ? $"http://[{ip}]:{port}" : $"http://{ip}:{port}");
}
