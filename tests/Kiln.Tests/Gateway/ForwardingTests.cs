using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Gateway;
using Microsoft.AspNetCore.Http;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>Streaming passes through as it is written, a client's disconnect reaches the pod, turned-away calls go elsewhere.</summary>
public sealed class ForwardingTests
{
    [Fact]
    public async Task AStream_ReachesTheClient_WhileTheUpstreamIsStillGenerating()
    {
        await using var pod = await FakePod.StartAsync("a");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = false;
        pod.Handler = async c =>
        {
            c.Response.ContentType = "text/event-stream";
            await c.Response.WriteAsync("data: {\"n\":1}\n\n", c.RequestAborted);
            await c.Response.Body.FlushAsync(c.RequestAborted);
            await release.Task.WaitAsync(c.RequestAborted);
            await c.Response.WriteAsync("data: [DONE]\n\n", c.RequestAborted);
            finished = true;
        };
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = pod.BaseUrl.ToString() }, cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilPodsReadyAsync(http, 1);

        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/chat/completions?x=1") { Content = Chat("s", "u", stream: true) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        var first = await reader.ReadLineAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), Ct);

        Assert.Equal("data: {\"n\":1}", first);
        Assert.False(finished); // the upstream has not finished: the chunk came through on its own
        Assert.Equal("/api/v1/chat/completions?x=1", Assert.Single(pod.Calls)); // path and query unchanged
        release.SetResult();
        var rest = await reader.ReadToEndAsync(Ct);
        Assert.Contains("data: [DONE]", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClientThatGoesAway_CancelsTheUpstreamCall()
    {
        await using var pod = await FakePod.StartAsync("a");
        pod.Handler = async c =>
        {
            c.Response.ContentType = "text/event-stream";
            await c.Response.WriteAsync("data: {\"n\":1}\n\n", c.RequestAborted);
            await c.Response.Body.FlushAsync(c.RequestAborted);
            await Task.Delay(Timeout.Infinite, c.RequestAborted);
        };
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = pod.BaseUrl.ToString() }, cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilPodsReadyAsync(http, 1);

        using (var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/chat/completions") { Content = Chat("s", "u", stream: true) })
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
            Assert.Equal("data: {\"n\":1}", await reader.ReadLineAsync(Ct));
            Assert.False(pod.Aborted.Task.IsCompleted);
        } // the client closes the stream here

        await pod.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await UntilAsync(async () => (int)(await StatsAsync(http))["pods"]![0]!["inFlight"]! == 0, "the call is gone from the gateway");
    }

    [Fact]
    public async Task APodAnswering503_HasTheCallRetriedOnAnotherPod()
    {
        await using var draining = await FakePod.StartAsync("draining");
        await using var healthy = await FakePod.StartAsync("healthy");
        draining.Handler = async c =>
        {
            c.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            await c.Response.WriteAsJsonAsync(new { error = new { message = "draining", type = "server_error" } });
        };
        healthy.Backlog = 5000; // least-loaded tries the idle-looking draining pod first
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = $"{draining.BaseUrl},{healthy.BaseUrl}", Balancing = "least-loaded" }, cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilPodsReadyAsync(http, 2);

        using var response = await http.PostAsync("api/v1/chat/completions", Chat("s", "u"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("healthy", (string?)(await response.Content.ReadFromJsonAsync<JsonNode>(Ct))!["pod"]);
        Assert.Single(draining.Calls);
        Assert.Single(healthy.Calls);
    }

    [Fact]
    public async Task APodRefusingConnections_HasTheCallRetriedOnAnotherPod()
    {
        var gone = await FakePod.StartAsync("gone");
        await using var healthy = await FakePod.StartAsync("healthy");
        healthy.Backlog = 5000;
        // Long intervals: the gateway still believes the stopped pod ready when the call comes.
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            StaticPods = $"{gone.BaseUrl},{healthy.BaseUrl}",
            Balancing = "least-loaded",
            DiscoveryIntervalMs = 600_000,
            StatsIntervalMs = 600_000,
        }, cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilPodsReadyAsync(http, 2);
        await gone.DisposeAsync();

        using var response = await http.PostAsync("api/v1/completions", new StringContent("{\"prompt\":\"x\"}", Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("healthy", (string?)(await response.Content.ReadFromJsonAsync<JsonNode>(Ct))!["pod"]);
        var goneStats = (await StatsAsync(http))["pods"]!.AsArray().Single(p => (string?)p!["name"] == gone.BaseUrl.ToString().TrimEnd('/'))!;
        Assert.Equal(1, (int)goneStats["forwarded"]!); // it was tried, and the call still succeeded
        Assert.False((bool)goneStats["ready"]!);
    }
}
