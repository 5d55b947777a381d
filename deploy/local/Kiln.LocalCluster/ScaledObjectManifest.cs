using k8s;
using k8s.Models;

namespace Kiln.LocalCluster;

/// <summary>KEDA's ScaledObject (a CRD, keda.sh/v1alpha1): the fields the stand-in and the manifest tests read.</summary>
public sealed class ScaledObjectManifest : IKubernetesObject<V1ObjectMeta>
{
    public const string ApiGroupVersionKind = "keda.sh/v1alpha1/ScaledObject";

    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public V1ObjectMeta Metadata { get; set; } = new();
    public ScaledObjectSpec Spec { get; set; } = new();

    /// <summary>The one ScaledObject in a manifest file.</summary>
    public static ScaledObjectManifest Load(string path) =>
        KubernetesYaml.LoadAllFromString(File.ReadAllText(path), new Dictionary<string, Type> { [ApiGroupVersionKind] = typeof(ScaledObjectManifest) })
            .OfType<ScaledObjectManifest>().Single();
}

public sealed class ScaledObjectSpec
{
    public ScaleTarget ScaleTargetRef { get; set; } = new();
    public int? MinReplicaCount { get; set; }
    public int? MaxReplicaCount { get; set; }
    public int? PollingInterval { get; set; }
    public int? CooldownPeriod { get; set; }
    public FallbackSpec? Fallback { get; set; }
    public AdvancedSpec? Advanced { get; set; }
    public List<TriggerSpec> Triggers { get; set; } = [];
}

public sealed class ScaleTarget
{
    public string Name { get; set; } = "";
}

public sealed class FallbackSpec
{
    public int FailureThreshold { get; set; }
    public int Replicas { get; set; }
    public string? Behavior { get; set; }
}

public sealed class AdvancedSpec
{
    public HpaConfig? HorizontalPodAutoscalerConfig { get; set; }
}

public sealed class HpaConfig
{
    public V2HorizontalPodAutoscalerBehavior? Behavior { get; set; }
}

public sealed class TriggerSpec
{
    public string Type { get; set; } = "";
    public Dictionary<string, string> Metadata { get; set; } = [];
}
