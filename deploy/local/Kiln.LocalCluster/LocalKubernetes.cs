using System.Diagnostics;
using System.Net;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Kiln.LocalCluster;

/// <summary>
/// A stand-in for the parts of Kubernetes the loop touches, on loopback: the API server's node and pod lists (the
/// shapes KubernetesClient reads: <c>GET /api/v1/nodes</c>, <c>/api/v1/pods</c>, <c>/api/v1/namespaces/{ns}/pods</c>
/// with <c>labelSelector</c>), the Deployment controller (replicas), the scheduler (a pod binds to a node with its
/// GPUs free, else stays Pending) and kubelet (starts the pod's process, probes readiness, and on deletion sends
/// SIGTERM, then SIGKILL after the grace period, as https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
/// describes). Scale-in deletes Pending pods first, then the newest (the ReplicaSet controller's order).
/// </summary>
public sealed partial class LocalKubernetes : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly List<AppPod> _pods = [];
    private readonly LocalDeployment _deployment;
    private readonly IReadOnlyList<LocalNode> _nodes;
    private readonly ClusterEvents _events;
    private readonly TimeProvider _time;
    private readonly HttpClient _probe = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly CancellationTokenSource _stop = new();
    private readonly string _logDirectory;
    private WebApplication? _api;
    private Task? _kubelet;
    private int _nextPod;
    private int _replicas;

    public LocalKubernetes(LocalDeployment deployment, IReadOnlyList<LocalNode> nodes, ClusterEvents events, TimeProvider time, string logDirectory)
    {
        _deployment = deployment;
        _nodes = nodes;
        _events = events;
        _time = time;
        _logDirectory = logDirectory;
        Directory.CreateDirectory(logDirectory);
    }

    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>How often kubelet probes readiness (a manifest's periodSeconds, compressed for loopback).</summary>
    public TimeSpan ProbePeriod { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The Deployment's spec.replicas, as KEDA and the HPA set it.</summary>
    public int Replicas
    {
        get
        {
            lock (_gate)
            {
                return _replicas;
            }
        }
    }

    /// <summary>Pods not yet gone, Pending and terminating included.</summary>
    public IReadOnlyList<AppPod> Pods
    {
        get
        {
            lock (_gate)
            {
                return [.. _pods.Where(p => !p.Gone)];
            }
        }
    }

    /// <summary>The Deployment's status.replicas: pods that exist and are not terminating.</summary>
    public int CurrentReplicas
    {
        get
        {
            lock (_gate)
            {
                return _pods.Count(p => !p.Gone && p.DeletionTimestamp is null);
            }
        }
    }

    public int ReadyReplicas
    {
        get
        {
            lock (_gate)
            {
                return _pods.Count(p => !p.Gone && p.DeletionTimestamp is null && p.Ready);
            }
        }
    }

    public int MaxRunningPods { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Kiln.Scaler.EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapGet("/api/v1/nodes", () => Json(NodeList()));
        app.MapGet("/api/v1/pods", (HttpContext c) => Json(PodList(null, c.Request.Query["labelSelector"])));
        app.MapGet("/api/v1/namespaces/{ns}/pods", (string ns, HttpContext c) => Json(PodList(ns, c.Request.Query["labelSelector"])));
        await app.StartAsync(cancellationToken);
        _api = app;
        BaseUrl = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        _kubelet = Task.Run(() => KubeletLoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Sets spec.replicas: creates pods (scheduled where GPUs are free) or deletes the surplus.</summary>
    public void Scale(int replicas, string why)
    {
        List<AppPod> deleted = [];
        lock (_gate)
        {
            if (replicas == _replicas)
            {
                return;
            }

            _events.Add("scale", $"{_replicas} -> {replicas} ({why})");
            _replicas = replicas;
            var live = _pods.Where(p => !p.Gone && p.DeletionTimestamp is null).ToList();
            for (var i = live.Count; i < replicas; i++)
            {
                var n = ++_nextPod;
                var pod = new AppPod($"{_deployment.Name}-{n}", $"127.0.0.{10 + n}", _deployment.GpusPerPod, _time.GetUtcNow());
                _pods.Add(pod);
                _events.Add("pod-created", pod.Name);
            }

            foreach (var pod in live.OrderBy(p => p.Node is null ? 0 : 1).ThenByDescending(p => p.Created).Take(Math.Max(0, live.Count - replicas)))
            {
                pod.DeletionTimestamp = _time.GetUtcNow();
                deleted.Add(pod);
            }
        }

        foreach (var pod in deleted)
        {
            _ = Task.Run(() => TerminateAsync(pod, "scaled in"));
        }
    }

    /// <summary>Deletes one pod as <c>kubectl delete pod</c> would (the Deployment then creates a replacement).</summary>
    public Task DeleteAsync(AppPod pod, string why)
    {
        ArgumentNullException.ThrowIfNull(pod);
        lock (_gate)
        {
            pod.DeletionTimestamp ??= _time.GetUtcNow();
        }

        return TerminateAsync(pod, why);
    }

    private async Task TerminateAsync(AppPod pod, string why)
    {
        _events.Add("pod-terminating", $"{pod.Name} ({why})");
        var process = pod.Process;
        if (process is not null && !process.HasExited)
        {
            Signal(process.Id, Sigterm);
            using var grace = new CancellationTokenSource(_deployment.TerminationGracePeriod, _time);
            try
            {
                await process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _events.Add("pod-killed", $"{pod.Name}: still running after the {_deployment.TerminationGracePeriod.TotalSeconds:F0} s grace period");
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }

            pod.Exited(process.ExitCode);
        }

        lock (_gate)
        {
            pod.Gone = true;
            pod.Ready = false;
        }

        _events.Add("pod-gone", $"{pod.Name} exit {pod.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(never started)"}");
    }

    // kubelet and the scheduler in one loop: bind Pending pods, start their processes, probe readiness; the
    // Deployment controller's part too: replace pods that went away while replicas still want them.
    private async Task KubeletLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            List<AppPod> toStart = [];
            List<AppPod> toProbe = [];
            lock (_gate)
            {
                var live = _pods.Where(p => !p.Gone && p.DeletionTimestamp is null).ToList();
                for (var i = live.Count; i < _replicas; i++)
                {
                    var n = ++_nextPod;
                    var replacement = new AppPod($"{_deployment.Name}-{n}", $"127.0.0.{10 + n}", _deployment.GpusPerPod, _time.GetUtcNow());
                    _pods.Add(replacement);
                    _events.Add("pod-created", $"{replacement.Name} (replacement)");
                }

                foreach (var pod in _pods.Where(p => !p.Gone && p.DeletionTimestamp is null && p.Node is null).OrderBy(p => p.Created))
                {
                    var node = _nodes.FirstOrDefault(n => n.Gpus - UsedGpus(n.Name) >= pod.Gpus);
                    if (node is not null)
                    {
                        pod.Node = node.Name;
                        toStart.Add(pod);
                    }
                    else if (!pod.SeenPending)
                    {
                        pod.SeenPending = true;
                        _events.Add("pod-pending", $"{pod.Name}: no node has {pod.Gpus} {_deployment.GpuResource} free");
                    }
                }

                toProbe.AddRange(_pods.Where(p => !p.Gone && p.Process is not null));
                MaxRunningPods = Math.Max(MaxRunningPods, _pods.Count(p => !p.Gone && p.Node is not null));
            }

            foreach (var pod in toStart)
            {
                StartProcess(pod);
            }

            await Task.WhenAll(toProbe.Select(p => ProbeAsync(p, ct)));
            try
            {
                await Task.Delay(ProbePeriod, _time, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private int UsedGpus(string node) => _pods.Where(p => !p.Gone && p.Node == node).Sum(p => p.Gpus);

    private void StartProcess(AppPod pod)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } d && File.Exists(d) ? d : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in _deployment.Command(pod.Ip, _deployment.Port))
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in _deployment.Environment)
        {
            psi.Environment[k] = v;
        }

        psi.Environment["HOSTNAME"] = pod.Name;
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var log = new StreamWriter(Path.Combine(_logDirectory, $"{pod.Name}.log")) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => WriteLine(log, e.Data);
        process.ErrorDataReceived += (_, e) => WriteLine(log, e.Data);
        process.Exited += (_, _) => log.Dispose();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        pod.Attach(process);
        _events.Add("pod-started", $"{pod.Name} on {pod.Node} at http://{pod.Ip}:{_deployment.Port} (pid {process.Id})");
    }

    private static void WriteLine(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // the process exited while its last lines were in flight
            }
        }
    }

    private async Task ProbeAsync(AppPod pod, CancellationToken ct)
    {
        bool ready;
        try
        {
            using var response = await _probe.GetAsync(new Uri($"http://{pod.Ip}:{_deployment.Port}{_deployment.ReadinessPath}"), ct);
            ready = response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            ready = false;
        }

        bool changed;
        lock (_gate)
        {
            changed = !pod.Gone && pod.Ready != ready;
            if (changed)
            {
                pod.Ready = ready;
            }
        }

        if (changed)
        {
            _events.Add(ready ? "pod-ready" : "pod-unready", pod.Name);
        }
    }

    private V1NodeList NodeList() => new()
    {
        ApiVersion = "v1",
        Kind = "NodeList",
        Metadata = new V1ListMeta { ResourceVersion = "1" },
        Items = [.. _nodes.Select(n => new V1Node
        {
            Metadata = new V1ObjectMeta { Name = n.Name, Labels = new Dictionary<string, string> { ["kubernetes.io/hostname"] = n.Name } },
            Spec = new V1NodeSpec(),
            Status = new V1NodeStatus
            {
                Allocatable = new Dictionary<string, ResourceQuantity> { [_deployment.GpuResource] = new($"{n.Gpus}"), ["cpu"] = new("16") },
                Conditions = [new V1NodeCondition { Type = "Ready", Status = "True" }],
            },
        })],
    };

    private V1PodList PodList(string? ns, string? labelSelector)
    {
        List<V1Pod> pods;
        lock (_gate)
        {
            pods = [.. _pods.Where(p => !p.Gone).Select(p => p.ToV1Pod(_deployment.Namespace, new Dictionary<string, string>(_deployment.Labels), _deployment.GpuResource))];
        }

        var selector = string.IsNullOrEmpty(labelSelector) ? null : Kiln.Scaler.Scaling.LabelSelector.Parse(labelSelector);
        return new V1PodList
        {
            ApiVersion = "v1",
            Kind = "PodList",
            Metadata = new V1ListMeta { ResourceVersion = "1" },
            Items = [.. pods.Where(p => (ns is null || p.Metadata.NamespaceProperty == ns) && (selector is null || selector.Matches(p.Metadata.Labels)))],
        };
    }

    private static IResult Json<T>(T value) => Results.Text(KubernetesJson.Serialize(value), "application/json");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_kubelet is not null)
        {
            await _kubelet;
        }

        foreach (var pod in Pods)
        {
            if (pod.Process is { HasExited: false } process)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }

        if (_api is not null)
        {
            await _api.StopAsync();
            await _api.DisposeAsync();
        }

        _probe.Dispose();
        _stop.Dispose();
    }

    private const int Sigterm = 15;

    private static void Signal(int pid, int signal) => _ = Kill(pid, signal);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
