using System.Net;
using System.Net.Http.Json;
using Grpc.Core;
using Kiln.Scaler;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Service;
using Kiln.Scaler.Sources;
using Kiln.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Kiln.Tests.Scaler;

/// <summary>
/// The scaler as a real cluster drives it: metadata as KEDA sends it (FromEnv keys resolved to values from the
/// scale target's environment), the client library's config chain, a quiet log at start and during outages, and
/// the gateway's reports of the calls it holds at zero replicas.
/// </summary>
public sealed class KedaTermsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ConnectionFromEnv_Missing_SaysTheTargetLacksTheVariable()
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await h.Client.IsActiveAsync(h.Ref(overrides: ("connectionFromEnv", null)), cancellationToken: Ct));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("target Deployment lacks", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectionFromEnv_AVariableNameInsteadOfItsValue_IsRefusedAsUnresolved()
    {
        // What the scaler got before it followed KEDA: the name. It is not looked up in the scaler's own environment.
        Environment.SetEnvironmentVariable("KILN_TEST_SCALER_OWN_STORAGE", "UseDevelopmentStorage=true");
        try
        {
            await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
            var e = await Assert.ThrowsAsync<RpcException>(async () =>
                await h.Client.IsActiveAsync(h.Ref(overrides: ("connectionFromEnv", "KILN_TEST_SCALER_OWN_STORAGE")), cancellationToken: Ct));
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains("not a storage connection string", e.Status.Detail, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("KILN_TEST_SCALER_OWN_STORAGE", null);
        }
    }

    [Fact]
    public async Task ConnectionString_NeverInErrorsOrLogs()
    {
        // A real queue client against a closed port: the read fails, the answer names the account, not the key.
        const string Key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs=";
        var connection = $"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={Key};QueueEndpoint=http://127.0.0.1:9/acct;";
        var logs = new CapturedLogs();
        await using var h = await ScalerHarness.StartAsync(connection, configure: o => o.OutboundTimeoutMs = 1000, services: s => s.AddLogging(logs.AddTo));
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 2));
        var e = await Assert.ThrowsAsync<RpcException>(() => h.MetricAsync(h.Ref()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("127.0.0.1:9/acct/jobs", e.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, e.Status.Detail, StringComparison.Ordinal);
        Assert.NotEmpty(logs.Entries);
        Assert.DoesNotContain(logs.Entries, l => l.Message.Contains(Key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Kubeconfig_FromTheKubeconfigVariable_WhenNoBaseUrlIsSet()
    {
        await using var kube = await FakeKubernetesApi.StartAsync();
        kube.Nodes.Add(FakeKubernetesApi.Node("from-kubeconfig", 4));
        using var dir = new Numerics.TempDirectory();
        var path = Path.Combine(dir.Path, "config");
        await File.WriteAllTextAsync(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: local
              cluster:
                server: {kube.BaseUrl.ToString().TrimEnd('/')}
            users:
            - name: me
              user:
                token: abc
            contexts:
            - name: local
              context:
                cluster: local
                user: me
            current-context: local
            """, Ct);
        var before = Environment.GetEnvironmentVariable("KUBECONFIG");
        Environment.SetEnvironmentVariable("KUBECONFIG", path);
        try
        {
            var source = new KubernetesClusterSource(KubernetesClusterSource.CreateClient(null, TimeSpan.FromSeconds(10)));
            var snapshot = await source.ReadAsync(Ct);
            Assert.Equal("from-kubeconfig", Assert.Single(snapshot.Nodes).Name);
        }
        finally
        {
            Environment.SetEnvironmentVariable("KUBECONFIG", before);
        }
    }

    [Fact]
    public async Task NormalStart_LogsNoError()
    {
        var logs = new CapturedLogs();
        var options = new ScalerOptions { ListenAddress = "127.0.0.1", GrpcPort = 0, MetricsPort = 0 };
        await using var app = ScalerHost.Build([], options, s =>
        {
            s.AddLogging(logs.AddTo);
            s.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        });
        await app.StartAsync(Ct);
        await app.StopAsync(Ct);
        Assert.Empty(logs.AtLeast(LogLevel.Error));
    }

    [Fact]
    public async Task Outage_OneWarningPerSource_ThenOneLineWhenItRecovers()
    {
        var logs = new CapturedLogs();
        var queue = new FakeQueueSource { Sample = new QueueSample(1, 1, 700) };
        await using var h = await ScalerHarness.StartAsync(queue: queue, services: s => s.AddLogging(logs.AddTo));
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 4));
        ScaledObjectRef[] objects = [h.Ref("a"), h.Ref("b"), h.Ref("c")];
        foreach (var r in objects)
        {
            Assert.Equal(700, await h.FirstMetricAsync(r));
        }

        h.Kube.FailWith = 500;
        for (var round = 0; round < 4; round++)
        {
            foreach (var r in objects)
            {
                Assert.Equal(700, await h.MetricAsync(r)); // the last good cluster reading, within its staleness bound
            }
        }

        var warnings = logs.AtLeast(LogLevel.Warning);
        Assert.Equal("cluster", Assert.Single(warnings).Message.Split(' ')[0]);

        h.Kube.FailWith = 0;
        foreach (var r in objects)
        {
            Assert.Equal(700, await h.MetricAsync(r));
        }

        Assert.Single(logs.AtLeast(LogLevel.Warning));
        var recovered = Assert.Single(logs.Entries, l => l.Message.Contains("recovered", StringComparison.Ordinal));
        Assert.StartsWith("cluster recovered after", recovered.Message, StringComparison.Ordinal);
        Assert.Contains("and 12 failed reads", recovered.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GatewayReport_JoinsTheBacklog_ActivatesAtZero_AndExpires()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource(), services: s => s.AddSingleton<TimeProvider>(clock));
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        var r = h.Ref(overrides: ("activationThreshold", "100000")); // a held call activates whatever the threshold
        Assert.Equal(0, await h.MetricAsync(r));
        Assert.False((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);

        using var http = new HttpClient { BaseAddress = h.Scaler.MetricsAddress };
        await PutAsync(http, "kiln", "llama", "gw-1", new GatewayReport { HeldRequests = 2, HeldTokens = 700 });
        await PutAsync(http, "kiln", "llama", "gw-2", new GatewayReport { HeldRequests = 1, HeldTokens = 300 });
        await PutAsync(http, "kiln", "other", "gw-1", new GatewayReport { HeldRequests = 5, HeldTokens = 9000 }); // another object
        Assert.Equal(1000, await h.MetricAsync(r));
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);

        // A gateway's newer report replaces its older one.
        await PutAsync(http, "kiln", "llama", "gw-2", new GatewayReport { HeldRequests = 0, HeldTokens = 0 });
        Assert.Equal(700, await h.MetricAsync(r));

        clock.Advance(GatewayReportPath.Ttl + TimeSpan.FromSeconds(1)); // gw-1 stopped reporting (gone, or the scaler lost it)
        Assert.Equal(0, await h.MetricAsync(r));
        Assert.False((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
    }

    [Theory]
    [InlineData("""{"heldRequests":-1,"heldTokens":5}""")]
    [InlineData("""{"heldRequests":1,"heldTokens":-5}""")]
    [InlineData("""not json""")]
    [InlineData("""{"heldRequests":"many"}""")]
    public async Task GatewayReport_Malformed_Is400(string body)
    {
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource());
        using var http = new HttpClient { BaseAddress = h.Scaler.MetricsAddress };
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await http.PutAsync(new Uri(GatewayReportPath.For("kiln", "llama", "gw"), UriKind.Relative), content, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task StreamIsActive_PushesTrueAtOnceWhenAGatewayStartsHolding()
    {
        // The stream's own re-evaluation is a minute away: a true within the test's bound can only be the wake.
        await using var h = await ScalerHarness.StartAsync(queue: new FakeQueueSource(), configure: o => o.StreamPollIntervalMs = 60_000);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        var r = h.Ref();
        using var stream = h.Client.StreamIsActive(r, cancellationToken: Ct);
        Assert.True(await stream.ResponseStream.MoveNext(Ct));
        Assert.False(stream.ResponseStream.Current.Result); // idle at zero

        using var http = new HttpClient { BaseAddress = h.Scaler.MetricsAddress };
        await PutAsync(http, "kiln", "llama", "gw-1", new GatewayReport { HeldRequests = 1, HeldTokens = 40 });
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        bound.CancelAfter(TimeSpan.FromSeconds(20));
        Assert.True(await stream.ResponseStream.MoveNext(bound.Token));
        Assert.True(stream.ResponseStream.Current.Result);
    }

    private static async Task PutAsync(HttpClient http, string ns, string so, string gateway, GatewayReport report)
    {
        using var response = await http.PutAsJsonAsync(new Uri(GatewayReportPath.For(ns, so, gateway), UriKind.Relative), report, Ct);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
    }
}
