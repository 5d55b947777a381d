using System.Diagnostics;
using k8s.Models;

namespace Kiln.LocalCluster;

/// <summary>
/// One replica of the app: a pod object as the API serves it and, once scheduled on a node with free GPUs, a real
/// app process listening on the pod's own loopback address. Its Ready condition follows a readiness probe the way
/// kubelet runs one; deletion sets deletionTimestamp, sends SIGTERM and kills the process after the grace period.
/// </summary>
public sealed class AppPod
{
    private readonly object _gate = new();
    private Process? _process;

    public AppPod(string name, string ip, int gpus, DateTimeOffset created)
    {
        Name = name;
        Ip = ip;
        Gpus = gpus;
        Created = created;
    }

    public string Name { get; }
    public string Ip { get; }
    public int Gpus { get; }
    public DateTimeOffset Created { get; }

    /// <summary>The node it is bound to; null while Pending (no node has its GPUs free).</summary>
    public string? Node { get; set; }

    public bool Ready { get; set; }

    /// <summary>Whether the scheduler has already reported it unschedulable (once per pod, as an event).</summary>
    public bool SeenPending { get; set; }
    public DateTimeOffset? DeletionTimestamp { get; set; }

    /// <summary>Set once the process has exited (or was never started and the pod was deleted).</summary>
    public bool Gone { get; set; }

    public int? ExitCode { get; private set; }

    public string Phase => Node is null ? "Pending" : "Running";

    public void Attach(Process process)
    {
        lock (_gate)
        {
            _process = process;
        }
    }

    public Process? Process
    {
        get
        {
            lock (_gate)
            {
                return _process;
            }
        }
    }

    public void Exited(int code) => ExitCode = code;

    /// <summary>The pod in the API's own shape (what the scaler and the gateway read).</summary>
    public V1Pod ToV1Pod(string ns, IDictionary<string, string> labels, string gpuResource) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            Name = Name,
            NamespaceProperty = ns,
            Labels = new Dictionary<string, string>(labels),
            CreationTimestamp = Created.UtcDateTime,
            DeletionTimestamp = DeletionTimestamp?.UtcDateTime,
            Uid = Name,
        },
        Spec = new V1PodSpec
        {
            NodeName = Node,
            Containers =
            [
                new V1Container
                {
                    Name = "functions",
                    Resources = new V1ResourceRequirements
                    {
                        Requests = new Dictionary<string, ResourceQuantity> { [gpuResource] = new($"{Gpus}") },
                        Limits = new Dictionary<string, ResourceQuantity> { [gpuResource] = new($"{Gpus}") },
                    },
                },
            ],
        },
        Status = new V1PodStatus
        {
            Phase = Phase,
            PodIP = Node is null ? null : Ip,
            Conditions =
            [
                new V1PodCondition { Type = "PodScheduled", Status = Node is null ? "False" : "True" },
                new V1PodCondition { Type = "Ready", Status = Ready ? "True" : "False" },
            ],
        },
    };
}
