using System.Diagnostics;
using k8s;
using k8s.Models;
using Kiln.LocalCluster;
using Kiln.Scaler.Scaling;

namespace Kiln.Tests.Scaler;

/// <summary>The kustomize manifests under deploy/, read as objects: from the files, or rendered by <c>kubectl kustomize</c>.</summary>
public static class DeployManifests
{
    public static string DeployDir { get; } = Path.Combine(AzuriteProcess.RepoRoot(), "deploy");

    private static readonly Dictionary<string, Type> CustomTypes = new(StringComparer.Ordinal) { [ScaledObjectManifest.ApiGroupVersionKind] = typeof(ScaledObjectManifest) };

    /// <summary>Every object of the YAML files in <paramref name="directory"/> (default deploy/), kustomization.yaml aside.</summary>
    public static List<object> LoadAll(string? directory = null) =>
        [.. Directory.GetFiles(directory ?? DeployDir, "*.yaml").Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .SelectMany(f => Parse(File.ReadAllText(f)))];

    public static List<object> Parse(string yaml) => [.. KubernetesYaml.LoadAllFromString(yaml, CustomTypes)];

    public static T One<T>(List<object> all, string name) where T : IKubernetesObject<V1ObjectMeta> =>
        all.OfType<T>().Single(o => o.Metadata.Name == name);

    public static (ScaledObjectManifest So, TriggerSpec Trigger, ScalerMetadata Md) Scaled(List<object> all)
    {
        var so = all.OfType<ScaledObjectManifest>().Single();
        var trigger = so.Spec.Triggers.Single();

        // What KEDA would send: FromEnv keys resolved from the target's container; a Secret's value is not in the
        // manifests, so a variable from a secretKeyRef stands for a connection string.
        var target = One<V1Deployment>(all, so.Spec.ScaleTargetRef.Name).Spec.Template.Spec.Containers.Single();
        var env = (target.Env ?? []).ToDictionary(e => e.Name, e => e.Value ?? (e.ValueFrom?.SecretKeyRef is null ? "" : "UseDevelopmentStorage=true"));
        var sent = LocalKeda.ResolveFromEnv(trigger.Metadata, env);
        return (so, trigger, ScalerMetadata.Parse(so.Metadata.Name, so.Metadata.NamespaceProperty, sent));
    }

    /// <summary>Every container of every workload (Deployments, Jobs, Pods), init containers included, with its owner's name.</summary>
    public static IEnumerable<(string Owner, V1Container Container)> Containers(List<object> all)
    {
        var specs = all.OfType<V1Deployment>().Select(d => (d.Metadata.Name, d.Spec.Template.Spec))
            .Concat(all.OfType<V1Job>().Select(j => (j.Metadata.Name, j.Spec.Template.Spec)))
            .Concat(all.OfType<V1Pod>().Select(p => (p.Metadata.Name, p.Spec)));
        foreach (var (owner, spec) in specs)
        {
            foreach (var c in (spec.InitContainers ?? []).Concat(spec.Containers))
            {
                yield return (owner, c);
            }
        }
    }

    /// <summary>
    /// <c>kubectl kustomize DIR</c>'s output. Where kubectl is missing the test is skipped, except on CI
    /// (environment CI=true), where a missing kubectl is a failure: the check must not silently vanish there.
    /// </summary>
    public static async Task<string> KustomizeAsync(string directory, CancellationToken cancellationToken)
    {
        string? kubectl = FindKubectl();
        if (kubectl is null)
        {
            const string Missing = "kubectl is not on PATH: install it (kustomize is built in) to render deploy/";
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail(Missing + " (CI=true: this check may not be skipped)");
            }

            Assert.Skip(Missing);
        }

        var psi = new ProcessStartInfo(kubectl) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("kustomize");
        psi.ArgumentList.Add(directory);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start kubectl");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromMinutes(1), cancellationToken);
        Assert.True(process.ExitCode == 0, $"kubectl kustomize {directory} failed ({process.ExitCode}): {await stderr}");
        return await stdout;
    }

    private static string? FindKubectl() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "kubectl"))
            .FirstOrDefault(File.Exists);
}
