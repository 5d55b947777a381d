namespace Kiln.Scaler.Service;

/// <summary>Process-wide settings (configuration section "Scaler", env vars <c>Scaler__Name</c>); per-object ones come from scalerMetadata.</summary>
public sealed class ScalerOptions
{
    /// <summary>The Kubernetes API's base URL; empty = in-cluster config (or the kubeconfig outside a cluster).</summary>
    public string? KubernetesBaseUrl { get; set; }

    public string ListenAddress { get; set; } = "0.0.0.0";

    /// <summary>The gRPC port (HTTP/2; TLS when a certificate is configured).</summary>
    public int GrpcPort { get; set; } = 6000;

    /// <summary>The HTTP/1.1 port of /metrics and /healthz.</summary>
    public int MetricsPort { get; set; } = 8080;

    /// <summary>Timeout of every outbound call (storage, Kubernetes API, pod stats).</summary>
    public int OutboundTimeoutMs { get; set; } = 2000;

    /// <summary>A queue or pod reading younger than this is reused (StreamIsActive polls at this pace too).</summary>
    public int RefreshIntervalMs { get; set; } = 250;

    /// <summary>KEDA's polls (GetMetrics, IsActive) are answered from readings up to this old.</summary>
    public int PollMaxAgeMs { get; set; } = 3000;

    /// <summary>How often the readings of every recently polled object are renewed in the background (0 = never).</summary>
    public int BackgroundRefreshMs { get; set; } = 1000;

    /// <summary>The shared node and pod lists are re-read at most this often.</summary>
    public int ClusterRefreshMs { get; set; } = 1000;

    /// <summary>How often an open StreamIsActive stream re-evaluates.</summary>
    public int StreamPollIntervalMs { get; set; } = 250;

    /// <summary>How long the shared cluster snapshot is kept for serving stale (each object still applies its own stalenessSeconds).</summary>
    public int MaxStalenessSeconds { get; set; } = 600;

    /// <summary>PEM certificate (with KeyPath) or PFX (with CertificatePassword) for TLS on the gRPC port.</summary>
    public string? TlsCertificatePath { get; set; }

    public string? TlsKeyPath { get; set; }

    /// <summary>
    /// Sent as <c>Authorization: Bearer</c> with every read of a pod's /api/stats: one of the app's
    /// <c>Kiln:MetricsKeys</c> (or API keys). Empty = no header, for pods without keys.
    /// </summary>
    public string? PodStatsKey { get; set; }

    public string? TlsCertificatePassword { get; set; }

    internal TimeSpan OutboundTimeout => TimeSpan.FromMilliseconds(OutboundTimeoutMs);
}
