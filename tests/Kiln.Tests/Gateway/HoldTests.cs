using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using Kiln.Gateway;
using Kiln.Tests.Functions;
using Kiln.Tests.Scaler;
using Microsoft.Extensions.Time.Testing;
using OpenAI;
using OpenAI.Chat;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>Calls with no ready pod: held, then forwarded when one is ready; or refused past the count and time bounds.</summary>
public sealed class HoldTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    [Fact]
    public async Task HeldCall_IsStreamedThroughTheSdk_OnceAPodBecomesReady()
    {
        await using var k8s = await FakeKubernetesApi.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            Namespace = "kiln",
            PodSelector = "app=kiln-llama",
            KubernetesBaseUrl = k8s.BaseUrl.ToString(),
            PodPort = fixture.Server.Root.Port,
            DiscoveryIntervalMs = 50,
        }, cancellationToken: Ct);
        using var http = Client(gateway);
        var sdk = new OpenAIClient(new ApiKeyCredential("k"), new OpenAIClientOptions
        {
            Endpoint = new Uri(gateway.Address, "api/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromMinutes(2),
        }).GetChatClient(KilnServerFixture.ModelId);

        var updates = new List<StreamingChatCompletionUpdate>();
        var call = Task.Run(async () =>
        {
            await foreach (var u in sdk.CompleteChatStreamingAsync([new UserChatMessage("Once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0 }, Ct))
            {
                updates.Add(u);
            }
        }, Ct);

        await UntilHeldAsync(http, 1);
        Assert.False(call.IsCompleted);

        lock (k8s.Pods)
        {
            k8s.Pods.Add(FakeKubernetesApi.Pod("kiln", "kiln-llama-0", "node-a", 1, ip: "127.0.0.1", labels: new() { ["app"] = "kiln-llama" }));
        }

        await call.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.Equal(6, updates.Sum(u => u.ContentUpdate.Count(p => p.Text.Length > 0)));
        Assert.Contains(updates, u => u.FinishReason == ChatFinishReason.Length);
        Assert.Equal(0, (int)(await StatsAsync(http))["heldRequests"]!);
    }

    [Fact]
    public async Task PastTheCountBound_A503WithRetryAfterAndAnOpenAiBody()
    {
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = NoPod, MaxHeldRequests = 2 }, cancellationToken: Ct);
        using var http = Client(gateway);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var first = http.PostAsync("api/v1/chat/completions", Chat("s", "a"), stop.Token);
        var second = http.PostAsync("api/v1/chat/completions", Chat("s", "b"), stop.Token);
        await UntilHeldAsync(http, 2);

        using var third = await http.PostAsync("api/v1/chat/completions", Chat("s", "c"), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        Assert.NotNull(third.Headers.RetryAfter?.Delta);
        var error = await ErrorAsync(third);
        Assert.Equal("server_error", (string?)error["type"]);
        Assert.Equal("gateway_queue_full", (string?)error["code"]);
        Assert.Null(error["param"]);
        Assert.True(error.ContainsKey("param"));
        Assert.False(first.IsCompleted || second.IsCompleted);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
        await UntilHeldAsync(http, 0); // a client that goes away frees its slot
    }

    [Fact]
    public async Task PastTheTimeBound_A503WithRetryAfterAndAnOpenAiBody()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = NoPod, MaxHoldSeconds = 300 }, clock, cancellationToken: Ct);
        using var http = Client(gateway);
        var call = http.PostAsync("api/v1/completions", new StringContent("{\"prompt\":\"hi\",\"max_tokens\":4}", Encoding.UTF8, "application/json"), Ct);
        await UntilHeldAsync(http, 1);

        clock.Advance(TimeSpan.FromSeconds(299));
        await http.GetStringAsync("healthz", Ct); // a round trip through the server after the advance
        Assert.False(call.IsCompleted);
        Assert.Equal(1, (int)(await StatsAsync(http))["heldRequests"]!);

        clock.Advance(TimeSpan.FromSeconds(2));
        using var response = await call.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter?.Delta);
        var error = await ErrorAsync(response);
        Assert.Equal("server_error", (string?)error["type"]);
        Assert.Equal("no_ready_server", (string?)error["code"]);
        Assert.Equal(0, (int)(await StatsAsync(http))["heldRequests"]!);
    }

    [Fact]
    public async Task ABodyOverTheLimit_Is413WithAnOpenAiBody_WithOrWithoutContentLength()
    {
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = NoPod, MaxRequestBodyBytes = 1000 }, cancellationToken: Ct);
        using var http = Client(gateway);
        var big = Encoding.UTF8.GetBytes("{\"prompt\":\"" + new string('x', 1200) + "\"}");

        using var sized = await http.PostAsync("api/v1/completions", new ByteArrayContent(big), Ct);
        using var chunked = await http.PostAsync("api/v1/completions", new StreamContent(new MemoryStream(big)) { Headers = { ContentLength = null } }, Ct);
        foreach (var response in new[] { sized, chunked })
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            var error = await ErrorAsync(response);
            Assert.Equal("invalid_request_error", (string?)error["type"]);
            Assert.Equal("request_too_large", (string?)error["code"]);
        }

        Assert.Equal(0, (int)(await StatsAsync(http))["heldRequests"]!);
    }
}
