using System.Reflection;
using k8s;
using k8s.Models;
using Kiln.Functions.Hosting;
using Kiln.Functions.Jobs;
using Kiln.Gateway;
using Kiln.LocalCluster;
using Kiln.Scaler.Scaling;
using Kiln.Scaler.Service;

namespace Kiln.Tests.Scaler;

/// <summary>deploy/kustomization.yaml's fields the tests read (images:), and the rest it has, so the reader accepts it.</summary>
public sealed class KustomizationFile
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public string? Namespace { get; set; }
    public List<string> Resources { get; set; } = [];
    public List<KustomizeImage> Images { get; set; } = [];
}

public sealed class KustomizeImage
{
    public string Name { get; set; } = "";
    public string? NewName { get; set; }
    public string? NewTag { get; set; }

    public string Reference => $"{NewName ?? Name}:{NewTag ?? "latest"}";
}

/// <summary>
/// The deployment as it applies: rendered by kustomize with its images, its settings named as the programs bind them,
/// KEDA's connectionFromEnv resolvable where KEDA resolves it, and the pieces (GPUs, kernel cache, gateway, drain)
/// agreeing with each other.
/// </summary>
public sealed class DeployKustomizeTests
{
    /// <summary>
    /// Environment prefixes and the settings behind them, from the option types themselves.
    /// </summary>
    private static readonly (string Prefix, IReadOnlySet<string> Keys)[] BoundSettings =
    [
        ("Kiln__", new HashSet<string>(KilnSettings.Keys.Concat(JobOptions.Keys), StringComparer.OrdinalIgnoreCase)),
        ("Scaler__", Bindable(typeof(ScalerOptions))),
        ("Gateway__", Bindable(typeof(GatewayOptions))),
    ];

    private static readonly string JobsDir = Path.Combine(DeployManifests.DeployDir, "jobs");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Kustomize_Renders_AndSetsTheImagesOnEveryContainer_NeedsKubectl()
    {
        var images = ReadImages(DeployManifests.DeployDir);
        Assert.Equal(["kiln-functions", "kiln-gateway", "kiln-scaler"], images.Keys.Order(StringComparer.Ordinal));
        var rendered = DeployManifests.Parse(await DeployManifests.KustomizeAsync(DeployManifests.DeployDir, Ct));
        Assert.All(rendered.OfType<IMetadata<V1ObjectMeta>>().Where(o => o is not V1Namespace && o.Metadata is not null), o =>
            Assert.True(o.Metadata.NamespaceProperty is null || o.Metadata.NamespaceProperty == "kiln", $"{o.Metadata.Name} in {o.Metadata.NamespaceProperty}"));

        var containers = DeployManifests.Containers(rendered).ToList();
        Assert.All(containers, c => Assert.True(images.Values.Contains(c.Container.Image, StringComparer.Ordinal), $"{c.Owner}/{c.Container.Name}: {c.Container.Image}"));
        Assert.Equal(images.Values.Order(StringComparer.Ordinal), containers.Select(c => c.Container.Image).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));

        // The one-off jobs use the same functions image; the loader pod's third-party image is pinned.
        var jobImages = ReadImages(JobsDir);
        Assert.Equal(images["kiln-functions"], Assert.Single(jobImages).Value);
        var jobs = DeployManifests.Parse(await DeployManifests.KustomizeAsync(JobsDir, Ct));
        Assert.Equal(images["kiln-functions"], DeployManifests.Containers(jobs).Single().Container.Image);
        var loader = DeployManifests.Containers(DeployManifests.LoadAll(JobsDir)).Single(c => c.Owner == "kiln-model-loader").Container;
        Assert.Matches(@"^[a-z0-9./-]+:[0-9][0-9.]*$", loader.Image);
    }

    [Fact]
    public void EveryPrefixedVariable_IsASettingTheProgramBinds()
    {
        var all = DeployManifests.LoadAll().Concat(DeployManifests.LoadAll(JobsDir)).ToList();
        foreach (var (prefix, keys) in BoundSettings)
        {
            var names = Variables(all).Where(v => v.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(names); // the check has something to check
            Assert.Empty(Unbound(names, prefix, keys));
        }
    }

    [Fact]
    public void VariableCheck_FlagsASettingNameTheAppDoesNotBind()
    {
        // The name the manifest had: the engine options are bound straight under Kiln, not under Kiln:Engine.
        var old = DeployManifests.Parse("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: old }
            spec:
              selector: { matchLabels: { app: old } }
              template:
                metadata: { labels: { app: old } }
                spec:
                  containers:
                    - name: app
                      image: kiln-functions
                      env:
                        - { name: Kiln__Engine__TensorParallelSize, value: "2" }
                        - { name: Kiln__TensorParallelSize, value: "2" }
            """);
        var (prefix, keys) = BoundSettings[0];
        Assert.Equal(["old/app: Kiln__Engine__TensorParallelSize"], Unbound([.. Variables(old)], prefix, keys));
    }

    [Fact]
    public void TheKeys_ComeFromOneSecret_ApiKeysToTheAppAndGateway_TheMetricsKeyToEveryStatsReader()
    {
        var all = DeployManifests.LoadAll();
        (string Secret, string Key) From(string deployment, string variable) =>
            DeployManifests.One<V1Deployment>(all, deployment).Spec.Template.Spec.Containers.SelectMany(c => c.Env ?? []).Single(e => e.Name == variable)
                .ValueFrom.SecretKeyRef is { } r ? (r.Name, r.Key) : ("", "");

        Assert.Equal(("kiln-api-keys", "api-keys"), From("kiln-llama", $"Kiln__{AccessSettings.ApiKeysKey}"));
        Assert.Equal(("kiln-api-keys", "api-keys"), From("kiln-gateway", $"Gateway__{nameof(GatewayOptions.ApiKeys)}"));
        Assert.Equal(("kiln-api-keys", "metrics-key"), From("kiln-llama", $"Kiln__{AccessSettings.MetricsKeysKey}"));
        Assert.Equal(("kiln-api-keys", "metrics-key"), From("kiln-gateway", $"Gateway__{nameof(GatewayOptions.StatsKey)}"));
        Assert.Equal(("kiln-api-keys", "metrics-key"), From("kiln-scaler", $"Scaler__{nameof(ScalerOptions.PodStatsKey)}"));

        // The app listens beyond loopback, so it needs those keys to start at all, and never runs anonymous here.
        var app = DeployManifests.One<V1Deployment>(all, "kiln-llama").Spec.Template.Spec.Containers.Single();
        Assert.Contains(app.Command, a => a.StartsWith("--urls=", StringComparison.Ordinal) && LoopbackUrls.Beyond([a["--urls=".Length..]]).Count > 0);
        Assert.DoesNotContain(DeployManifests.Containers(all).SelectMany(c => c.Container.Env ?? []), e => e.Name.EndsWith("__" + AccessSettings.AllowAnonymousKey, StringComparison.Ordinal));
    }

    [Fact]
    public void ConnectionFromEnv_IsTheTargetsVariable_AndTheScalerHoldsNoStorageSecret()
    {
        var all = DeployManifests.LoadAll();
        var so = all.OfType<ScaledObjectManifest>().Single();
        string variable = so.Spec.Triggers.Single().Metadata["connectionFromEnv"];
        var target = DeployManifests.One<V1Deployment>(all, so.Spec.ScaleTargetRef.Name);
        var defined = target.Spec.Template.Spec.Containers.SelectMany(c => c.Env ?? []).Single(e => e.Name == variable);
        Assert.Equal("kiln-storage", defined.ValueFrom.SecretKeyRef.Name);
        Assert.Equal(JobOptions.ConnectionSetting, variable); // the app's own setting, which it reads for the queue

        // Its one secret is the metrics key (reads pod stats, runs nothing): no storage connection, no API key.
        var scaler = DeployManifests.One<V1Deployment>(all, "kiln-scaler").Spec.Template.Spec;
        Assert.All(scaler.Containers, c =>
        {
            Assert.All((c.Env ?? []).Where(e => e.ValueFrom?.SecretKeyRef is not null), e => Assert.Equal(("kiln-api-keys", "metrics-key"), (e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)));
            Assert.DoesNotContain(c.EnvFrom ?? [], e => e.SecretRef is not null);
        });
        Assert.DoesNotContain(scaler.Volumes ?? [], v => v.Secret is not null);
    }

    [Fact]
    public void Gpus_KernelCache_Drain_ClientService_AndGatewayAgree()
    {
        var all = DeployManifests.LoadAll();
        var (so, _, md) = DeployManifests.Scaled(all);
        var app = DeployManifests.One<V1Deployment>(all, so.Spec.ScaleTargetRef.Name);
        var pod = app.Spec.Template;
        var c = pod.Spec.Containers.Single();
        string Env(V1Container container, string name) => container.Env.Single(e => e.Name == name).Value;

        // GPUs = tpSize = the app's tensor-parallel size.
        Assert.Equal(md.TpSize, (int)c.Resources.Requests[md.GpuResourceName].ToDecimal());
        Assert.Equal($"{md.TpSize}", Env(c, "Kiln__" + nameof(Runtime.Engine.EngineOptions.TensorParallelSize)));

        // The kernel cache: a shared claim mounted where the app (and the image) keep compiled kernels.
        string cache = Env(c, "KILN_CUDA_CACHE");
        Assert.Contains($"KILN_CUDA_CACHE={cache} ", File.ReadAllText(Path.Combine(DeployManifests.DeployDir, "functions", "Dockerfile")), StringComparison.Ordinal);
        var mount = c.VolumeMounts.Single(m => m.MountPath == cache);
        Assert.NotEqual(true, mount.ReadOnlyProperty);
        string claim = pod.Spec.Volumes.Single(v => v.Name == mount.Name).PersistentVolumeClaim.ClaimName;
        Assert.Equal("kiln-cuda-cache", claim);
        Assert.Contains("ReadWriteMany", DeployManifests.One<V1PersistentVolumeClaim>(all, claim).Spec.AccessModes);

        // The drain ends before the kubelet's kill, and SIGTERM reaches the app itself (no host process in between).
        var drain = KilnSettings.ParseDrainTimeout(Env(c, "Kiln__" + KilnSettings.DrainTimeoutKey));
        Assert.True(TimeSpan.FromSeconds(pod.Spec.TerminationGracePeriodSeconds!.Value) > drain + KilnSettings.StopMargin);
        Assert.Equal(["dotnet", "/home/site/wwwroot/Kiln.Functions.dll"], c.Command.Take(2));

        // Clients call the gateway: the Service kiln-llama selects its pods, and no Service selects the app's.
        var gateway = DeployManifests.One<V1Deployment>(all, "kiln-gateway");
        var g = gateway.Spec.Template.Spec.Containers.Single();
        var client = DeployManifests.One<V1Service>(all, "kiln-llama");
        Assert.True(Selects(client, gateway.Spec.Template.Metadata.Labels));
        Assert.DoesNotContain(all.OfType<V1Service>(), s => Selects(s, pod.Metadata.Labels));
        var port = client.Spec.Ports.Single();
        Assert.Equal(80, port.Port);
        Assert.Equal(8080, g.Ports.Single(p => p.Name == port.TargetPort.Value || $"{p.ContainerPort}" == port.TargetPort.Value).ContainerPort);
        Assert.Equal(2, gateway.Spec.Replicas);
        Assert.DoesNotContain(md.GpuResourceName, g.Resources.Requests.Keys);
        Assert.Equal("/healthz", g.LivenessProbe.HttpGet.Path);
        Assert.Equal("/readyz", g.ReadinessProbe.HttpGet.Path);

        // The gateway finds the app's pods as the scaler does, and reports to the scaler's HTTP port.
        Assert.True(LabelSelector.Parse(Env(g, "Gateway__PodSelector")).Matches(pod.Metadata.Labels));
        Assert.Equal(md.PodSelector.Text, Env(g, "Gateway__PodSelector"));
        Assert.Contains(c.Ports, p => $"{p.ContainerPort}" == Env(g, "Gateway__PodPort"));
        Assert.Equal("metadata.namespace", g.Env.Single(e => e.Name == "Gateway__Namespace").ValueFrom.FieldRef.FieldPath);
        Assert.Equal(so.Metadata.Name, Env(g, "Gateway__ScaledObjectName"));
        var scalerUrl = new Uri(Env(g, "Gateway__ScalerUrl"));
        var scalerService = DeployManifests.One<V1Service>(all, "kiln-scaler");
        Assert.Equal($"{scalerService.Metadata.Name}.{scalerService.Metadata.NamespaceProperty}.svc.cluster.local", scalerUrl.Host);
        Assert.Equal("metrics", scalerService.Spec.Ports.Single(p => p.Port == scalerUrl.Port).Name); // HTTP/1.1, not the gRPC port
        Assert.True(int.Parse(Env(g, "Gateway__MaxHeldRequests"), System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.True(int.Parse(Env(g, "Gateway__MaxHoldSeconds"), System.Globalization.CultureInfo.InvariantCulture) > 0);

        // It reads pods in its namespace only.
        var role = DeployManifests.One<V1Role>(all, "kiln-gateway");
        var rule = role.Rules.Single();
        Assert.Equal(["pods"], rule.Resources);
        Assert.Equal(["get", "list", "watch"], rule.Verbs.Order(StringComparer.Ordinal));
        var binding = DeployManifests.One<V1RoleBinding>(all, "kiln-gateway");
        Assert.Equal(("Role", role.Metadata.Name), (binding.RoleRef.Kind, binding.RoleRef.Name));
        Assert.Equal(gateway.Spec.Template.Spec.ServiceAccountName, binding.Subjects.Single().Name);
    }

    /// <summary>Each image of an <c>images:</c> list, by the name the manifests use, as kustomize writes it.</summary>
    private static Dictionary<string, string> ReadImages(string directory) =>
        KubernetesYaml.Deserialize<KustomizationFile>(File.ReadAllText(Path.Combine(directory, "kustomization.yaml")))
            .Images.ToDictionary(i => i.Name, i => i.Reference, StringComparer.Ordinal);

    /// <summary>The public settable properties of an options type: what the configuration binder sets.</summary>
    private static HashSet<string> Bindable(Type options) =>
        new(options.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod?.IsPublic == true).Select(p => p.Name), StringComparer.OrdinalIgnoreCase);

    private static IEnumerable<(string Owner, string Name)> Variables(List<object> all) =>
        DeployManifests.Containers(all).SelectMany(c => (c.Container.Env ?? []).Select(e => ($"{c.Owner}/{c.Container.Name}", e.Name)));

    /// <summary>The variables under <paramref name="prefix"/> that name no setting (the binder reads "__" as ":").</summary>
    private static List<string> Unbound(List<(string Owner, string Name)> variables, string prefix, IReadOnlySet<string> keys) =>
        [.. variables.Where(v => v.Name.StartsWith(prefix, StringComparison.Ordinal) && !keys.Contains(v.Name[prefix.Length..]))
            .Select(v => $"{v.Owner}: {v.Name}")];

    private static bool Selects(V1Service service, IDictionary<string, string> labels) =>
        service.Spec.Selector is { Count: > 0 } selector && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}
