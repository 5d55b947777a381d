using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Scaler;

/// <summary>
/// A loopback stand-in for the Kubernetes API server: answers GET /api/v1/nodes, /api/v1/pods and
/// /api/v1/namespaces/{ns}/pods (with an equality labelSelector applied) with NodeList and
/// PodList JSON in the API's real shapes (kind, apiVersion, metadata, items with spec and status), or a Status error,
/// or slowly. Records the query strings so that tests can check what the client asked for.
/// </summary>
public sealed class FakeKubernetesApi : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeKubernetesApi(WebApplication app, Uri address)
    {
        _app = app;
        BaseUrl = address;
    }

    public Uri BaseUrl { get; }
    public List<JsonObject> Nodes { get; } = [];
    public List<JsonObject> Pods { get; } = [];
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Non-zero: every answer is this HTTP status with a Status body.</summary>
    public int FailWith { get; set; }

    /// <summary>Every answer waits this long first.</summary>
    public TimeSpan Delay { get; set; }

    public static async Task<FakeKubernetesApi> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Kiln.Scaler.EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeKubernetesApi? self = null;
        app.MapGet("/api/v1/nodes", (HttpContext c) => self!.AnswerAsync(c, "NodeList", self.Nodes));
        app.MapGet("/api/v1/pods", (HttpContext c) => self!.AnswerAsync(c, "PodList", self.Pods));
        app.MapGet("/api/v1/namespaces/{ns}/pods", (HttpContext c, string ns) => self!.AnswerAsync(c, "PodList", self.Pods, p => InNamespace(p, ns) && MatchesLabels(p, c.Request.Query["labelSelector"])));
        await app.StartAsync();
        self = new FakeKubernetesApi(app, new Uri(app.Urls.First()));
        return self;
    }

    private async Task AnswerAsync(HttpContext c, string kind, List<JsonObject> items, Func<JsonObject, bool>? filter = null)
    {
        Requests.Enqueue($"{c.Request.Path}{c.Request.QueryString}");
        if (Delay > TimeSpan.Zero)
        {
            await Task.Delay(Delay, c.RequestAborted);
        }

        c.Response.ContentType = "application/json";
        if (FailWith != 0)
        {
            c.Response.StatusCode = FailWith;
            await c.Response.WriteAsync(new JsonObject
            {
                ["kind"] = "Status",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject(),
                ["status"] = "Failure",
                ["message"] = "etcdserver: request timed out",
                ["reason"] = "InternalError",
                ["code"] = FailWith,
            }.ToJsonString());
            return;
        }

        JsonArray array;
        lock (items)
        {
            array = [.. items.Where(i => filter is null || filter(i)).Select(i => i.DeepClone())];
        }

        await c.Response.WriteAsync(new JsonObject
        {
            ["kind"] = kind,
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject { ["resourceVersion"] = "48213" },
            ["items"] = array,
        }.ToJsonString());
    }

    private static bool InNamespace(JsonObject pod, string ns) => (string?)pod["metadata"]?["namespace"] == ns;

    // Equality selectors only (k=v,k2=v2), which is all the gateway sends.
    private static bool MatchesLabels(JsonObject pod, string? selector) =>
        string.IsNullOrEmpty(selector) || selector.Split(',', StringSplitOptions.RemoveEmptyEntries).All(term =>
        {
            var kv = term.Split('=', 2);
            return kv.Length == 2 && (string?)pod["metadata"]?["labels"]?[kv[0].Trim()] == kv[1].Trim();
        });

    public static JsonObject Node(string name, int gpus, bool ready = true, bool unschedulable = false, string resource = "nvidia.com/gpu")
    {
        var resources = new JsonObject { ["cpu"] = "63500m", ["memory"] = "503Gi", ["pods"] = "110", [resource] = $"{gpus}" };
        return new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = name,
                ["uid"] = Guid.NewGuid().ToString(),
                ["resourceVersion"] = "1001",
                ["creationTimestamp"] = "2025-01-06T09:00:00Z",
                ["labels"] = new JsonObject { ["kubernetes.io/hostname"] = name, ["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3" },
            },
            ["spec"] = unschedulable
                ? new JsonObject { ["podCIDR"] = "10.244.1.0/24", ["unschedulable"] = true, ["taints"] = new JsonArray(new JsonObject { ["key"] = "node.kubernetes.io/unschedulable", ["effect"] = "NoSchedule" }) }
                : new JsonObject { ["podCIDR"] = "10.244.1.0/24" },
            ["status"] = new JsonObject
            {
                ["capacity"] = resources.DeepClone(),
                ["allocatable"] = resources,
                ["conditions"] = new JsonArray(
                    new JsonObject { ["type"] = "MemoryPressure", ["status"] = "False", ["lastHeartbeatTime"] = "2025-01-06T10:00:00Z", ["reason"] = "KubeletHasSufficientMemory" },
                    new JsonObject { ["type"] = "Ready", ["status"] = ready ? "True" : "False", ["lastHeartbeatTime"] = "2025-01-06T10:00:00Z", ["reason"] = ready ? "KubeletReady" : "KubeletNotReady" }),
                ["addresses"] = new JsonArray(new JsonObject { ["type"] = "InternalIP", ["address"] = "10.0.0.4" }),
            },
        };
    }

    public static JsonObject Pod(
        string ns, string name, string? node, int gpus, string phase = "Running", string? ip = null, bool ready = true,
        Dictionary<string, string>? labels = null, bool terminating = false, int initGpus = 0, bool limitsOnly = false,
        string resource = "nvidia.com/gpu")
    {
        var gpuQuantity = new JsonObject { [resource] = $"{gpus}" };
        var resources = limitsOnly
            ? new JsonObject { ["limits"] = gpuQuantity }
            : new JsonObject { ["requests"] = new JsonObject { ["cpu"] = "4", ["memory"] = "64Gi", [resource] = $"{gpus}" }, ["limits"] = gpuQuantity };
        var labelObject = new JsonObject();
        foreach (var (k, v) in labels ?? [])
        {
            labelObject[k] = v;
        }

        var metadata = new JsonObject
        {
            ["name"] = name,
            ["namespace"] = ns,
            ["uid"] = Guid.NewGuid().ToString(),
            ["resourceVersion"] = "2002",
            ["creationTimestamp"] = "2025-01-06T09:30:00Z",
            ["labels"] = labelObject,
        };
        if (terminating)
        {
            metadata["deletionTimestamp"] = "2025-01-06T10:00:00Z";
            metadata["deletionGracePeriodSeconds"] = 30;
        }

        var spec = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject { ["name"] = "kiln", ["image"] = "kiln/functions:dev", ["resources"] = resources }),
            ["restartPolicy"] = "Always",
        };
        if (initGpus > 0)
        {
            spec["initContainers"] = new JsonArray(new JsonObject
            {
                ["name"] = "warmup",
                ["image"] = "kiln/warmup:dev",
                ["resources"] = new JsonObject { ["requests"] = new JsonObject { [resource] = $"{initGpus}" }, ["limits"] = new JsonObject { [resource] = $"{initGpus}" } },
            });
        }

        if (node is not null)
        {
            spec["nodeName"] = node;
        }

        var status = new JsonObject
        {
            ["phase"] = phase,
            ["conditions"] = new JsonArray(
                new JsonObject { ["type"] = "PodScheduled", ["status"] = node is null ? "False" : "True" },
                new JsonObject { ["type"] = "Ready", ["status"] = ready ? "True" : "False" }),
        };
        if (ip is not null)
        {
            status["podIP"] = ip;
            status["podIPs"] = new JsonArray(new JsonObject { ["ip"] = ip });
            status["hostIP"] = "10.0.0.4";
        }

        return new JsonObject { ["metadata"] = metadata, ["spec"] = spec, ["status"] = status };
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
