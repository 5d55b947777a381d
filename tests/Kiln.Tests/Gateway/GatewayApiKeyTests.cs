using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using Kiln.Gateway;
using Kiln.Tests.Functions;
using Microsoft.Extensions.Configuration;
using OpenAI;
using OpenAI.Chat;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>
/// The gateway's own key check (Gateway:ApiKeys): a call without a right key is refused before it is held, so it
/// cannot wake a deployment at zero; a right one is forwarded with its Authorization header unchanged; the gateway
/// reads pod stats with its StatsKey (else its first API key).
/// </summary>
public sealed class GatewayApiKeyTests(KeyedServerFixture fixture) : IClassFixture<KeyedServerFixture>
{
    private const string Keys = "gw-key-one,gw-key-two";

    [Fact]
    public async Task WithoutARightKey_A401_AndNothingIsHeldOrReported()
    {
        await using var scaler = await FakeScaler.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = NoPod, ScalerUrl = scaler.BaseUrl.ToString(), ApiKeys = Keys }, cancellationToken: Ct);
        using var anonymous = Client(gateway);
        using var keyed = KeyedClient(gateway, "gw-key-one");

        // A held call would hang until cancelled: the refusal must come at once.
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        bounded.CancelAfter(TimeSpan.FromSeconds(20));
        foreach (var authorization in new[] { null, "Bearer wrong", "Bearer gw-key-one-and-more", "gw-key-one" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/chat/completions") { Content = Chat("s", "u") };
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            await ApiKeyAssert.InvalidApiKeyAsync(await anonymous.SendAsync(request, bounded.Token));
        }

        await ApiKeyAssert.InvalidApiKeyAsync(await anonymous.GetAsync(new Uri("gateway/stats", UriKind.Relative), Ct));
        using (var health = await anonymous.GetAsync(new Uri("healthz", UriKind.Relative), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        Assert.Equal(0, (int)(await StatsAsync(keyed))["heldRequests"]!);
        Assert.Empty(scaler.Puts);

        // The control: with a key the same call is held and reported at once.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var held = keyed.PostAsync("api/v1/chat/completions", Chat("s", "u"), stop.Token);
        await UntilHeldAsync(keyed, 1);
        await UntilAsync(() => Task.FromResult(!scaler.Puts.IsEmpty), "the report of the held call");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
    }

    [Fact]
    public async Task ARightKey_IsForwardedUnchanged_AndPodStatsAreReadWithTheStatsKey()
    {
        await using var pod = await FakePod.StartAsync("a");
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = pod.BaseUrl.ToString(), ApiKeys = Keys, StatsKey = "pod-metrics-key" }, cancellationToken: Ct);
        using var keyed = KeyedClient(gateway, "gw-key-two");

        using var response = await keyed.PostAsync("api/v1/chat/completions", Chat("s", "u"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Bearer gw-key-two", Assert.Single(pod.CallAuthorizations));
        Assert.NotEmpty(pod.StatsAuthorizations);
        Assert.All(pod.StatsAuthorizations, a => Assert.Equal("Bearer pod-metrics-key", a));
    }

    [Fact]
    public async Task WithoutAStatsKey_PodStatsAreReadWithTheFirstApiKey()
    {
        await using var pod = await FakePod.StartAsync("a");
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = pod.BaseUrl.ToString(), ApiKeys = Keys }, cancellationToken: Ct);
        using var keyed = KeyedClient(gateway, "gw-key-two");

        await UntilPodsReadyAsync(keyed, 1);

        Assert.All(pod.StatsAuthorizations, a => Assert.Equal("Bearer gw-key-one", a));
    }

    [Fact]
    public void TheKeys_ReadFromConfiguration_InEitherForm()
    {
        var array = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Gateway:ApiKeys:0"] = " a ",
            ["Gateway:ApiKeys:1"] = "b",
            ["Gateway:StatsKey"] = "m",
        }).Build();
        var comma = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Gateway:ApiKeys"] = "a, b," }).Build();

        var fromArray = GatewayOptions.FromConfiguration(array);
        Assert.Equal("a,b", fromArray.ApiKeys);
        Assert.Equal("m", fromArray.StatsKey);
        Assert.Equal("a,b", GatewayOptions.FromConfiguration(comma).ApiKeys);
    }

    [Fact]
    public async Task ThroughTheGateway_TheSdkWithAKey_IsAnsweredByAKeyedApp()
    {
        // As deployed: the gateway and the app share the API keys, the gateway reads stats with the metrics key.
        var app = fixture.Server.Root;
        await using var gateway = await GatewayHost.StartAsync(
            new GatewayOptions { StaticPods = $"http://127.0.0.1:{app.Port}", ApiKeys = $"{KeyedServerFixture.FirstKey},{KeyedServerFixture.SecondKey}", StatsKey = KeyedServerFixture.MetricsKey },
            cancellationToken: Ct);
        var chat = new OpenAIClient(new ApiKeyCredential(KeyedServerFixture.SecondKey), new OpenAIClientOptions
        {
            Endpoint = new Uri(gateway.Address, "api/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromMinutes(2),
        }).GetChatClient(KilnServerFixture.ModelId);

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 2 }, Ct);

        Assert.Equal(2, completion.Usage.OutputTokenCount);
    }

    private static HttpClient KeyedClient(RunningGateway gateway, string key)
    {
        var client = Client(gateway);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
