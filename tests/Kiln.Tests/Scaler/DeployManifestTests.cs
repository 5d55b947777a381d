using k8s;
using k8s.Models;
using Kiln.LocalCluster;
using Kiln.Scaler.Scaling;

namespace Kiln.Tests.Scaler;

/// <summary>The kustomize manifests in deploy/, read with KubernetesClient's YAML reader and checked against each other.</summary>
public sealed class DeployManifestTests
{
    private static readonly string DeployDir = DeployManifests.DeployDir;

    private static List<object> LoadAll() => DeployManifests.LoadAll();

    private static T One<T>(List<object> all, string name) where T : IKubernetesObject<V1ObjectMeta> => DeployManifests.One<T>(all, name);

    private static (ScaledObjectManifest So, TriggerSpec Trigger, ScalerMetadata Md) Scaled(List<object> all) => DeployManifests.Scaled(all);

    [Fact]
    public void Kustomization_ListsEveryManifest()
    {
        var text = File.ReadAllText(Path.Combine(DeployDir, "kustomization.yaml"));
        foreach (var file in Directory.GetFiles(DeployDir, "*.yaml").Select(Path.GetFileName).Where(f => f != "kustomization.yaml"))
        {
            Assert.Contains($"- {file}", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void FunctionApp_GpusEqualTpSize_ReadyProbe_ModelVolume_SelectedByTheScaler()
    {
        var all = LoadAll();
        var (so, _, md) = Scaled(all);
        var app = One<V1Deployment>(all, so.Spec.ScaleTargetRef.Name);
        var pod = app.Spec.Template;
        var c = pod.Spec.Containers.Single();

        Assert.Equal(md.TpSize, (int)c.Resources.Requests[md.GpuResourceName].ToDecimal());
        Assert.Equal(md.TpSize, (int)c.Resources.Limits[md.GpuResourceName].ToDecimal());
        Assert.Equal($"{md.TpSize}", c.Env.Single(e => e.Name == "Kiln__TensorParallelSize").Value);
        Assert.Equal("cuda", c.Env.Single(e => e.Name == "Kiln__Device").Value); // the GPUs it asks for are the ones it runs on
        Assert.Equal("/api/ready", c.ReadinessProbe.HttpGet.Path);
        var mount = c.VolumeMounts.Single(m => m.Name == "models");
        Assert.StartsWith(mount.MountPath, c.Env.Single(e => e.Name == "Kiln__Model").Value, StringComparison.Ordinal);
        Assert.NotNull(pod.Spec.Volumes.Single(v => v.Name == "models").PersistentVolumeClaim);

        // The scaler finds these pods, in this namespace, and reads their stats on the container's port.
        Assert.Equal(md.PodNamespace, app.Metadata.NamespaceProperty);
        Assert.True(md.PodSelector.Matches(pod.Metadata.Labels));
        Assert.Contains(c.Ports, p => p.ContainerPort == md.PodStatsPort);
        Assert.Equal(md.QueueName, c.Env.Single(e => e.Name == "Kiln__JobQueue").Value); // KEDA watches the queue the app reads
    }

    [Fact]
    public void Scaler_DeploymentServiceAndRbac()
    {
        var all = LoadAll();
        var (_, trigger, _) = Scaled(all);
        var deployment = One<V1Deployment>(all, "kiln-scaler");
        var c = deployment.Spec.Template.Spec.Containers.Single();

        // scalerAddress names the scaler's Service and its gRPC port.
        var address = trigger.Metadata["scalerAddress"];
        var host = address[..address.LastIndexOf(':')];
        var port = int.Parse(address[(address.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var svc = One<V1Service>(all, "kiln-scaler");
        Assert.StartsWith($"{svc.Metadata.Name}.{svc.Metadata.NamespaceProperty}.svc", host, StringComparison.Ordinal);
        Assert.Contains(svc.Spec.Ports, p => p.Port == port);
        Assert.Contains(c.Ports, p => p.ContainerPort == 6000);

        var role = all.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "kiln-scaler");
        foreach (var resource in new[] { "nodes", "pods" })
        {
            var rule = role.Rules.Single(r => r.Resources.Contains(resource));
            Assert.Equal([""], rule.ApiGroups);
            Assert.Equal(["get", "list", "watch"], rule.Verbs.Order());
        }

        Assert.DoesNotContain(role.Rules.SelectMany(r => r.Verbs), v => v is "create" or "update" or "patch" or "delete" or "*");
        var binding = all.OfType<V1ClusterRoleBinding>().Single();
        Assert.Equal(role.Metadata.Name, binding.RoleRef.Name);
        var subject = binding.Subjects.Single();
        Assert.Equal(deployment.Spec.Template.Spec.ServiceAccountName, subject.Name);
        Assert.Equal(deployment.Metadata.NamespaceProperty, subject.NamespaceProperty);
    }

    [Fact]
    public void ScaledObject_ScaleToZeroCooldownFallbackAndValidMetadata()
    {
        var (so, trigger, md) = Scaled(LoadAll());
        Assert.Equal(0, so.Spec.MinReplicaCount);
        Assert.True(so.Spec.MaxReplicaCount > 0);
        Assert.True(so.Spec.CooldownPeriod >= 60);
        Assert.NotNull(so.Spec.Fallback);
        Assert.True(so.Spec.Fallback.FailureThreshold > 0);
        Assert.True(so.Spec.Fallback.Replicas >= 1);
        Assert.True(trigger.Type is "external" or "external-push", trigger.Type);
        Assert.True(md.TargetBacklogPerReplica > 0);
        Assert.Equal("nvidia.com/gpu", md.GpuResourceName);
    }
}
