using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Kiln.Access;
using Kiln.Functions.Hosting;
using Kiln.Scaler.Sources;
using Microsoft.AspNetCore.Http;
using OpenAI.Chat;

namespace Kiln.Tests.Functions;

/// <summary>
/// Keys as OpenAI clients send them (<c>Authorization: Bearer</c>): a right key is answered, a wrong or missing one
/// gets OpenAI's 401; the probes stay open; stats and metrics take an API key or a metrics key, and a metrics key
/// cannot run inference (403).
/// </summary>
public sealed class ApiKeyTests(KeyedServerFixture fixture) : IClassFixture<KeyedServerFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private KilnServer Server => fixture.Server;

    [Fact]
    public async Task TheSdk_WithTheRightKey_GetsAnAnswer()
    {
        var chat = Server.OpenAi(KeyedServerFixture.FirstKey).GetChatClient(KilnServerFixture.ModelId);
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 3 }, Ct);
        Assert.Equal(3, completion.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task TheSecondKey_WorksToo_SoOneCanBeRotated()
    {
        var models = await Server.OpenAi(KeyedServerFixture.SecondKey).GetOpenAIModelClient().GetModelsAsync(Ct);
        Assert.Equal(KilnServerFixture.ModelId, Assert.Single(models.Value).Id);
    }

    [Fact]
    public async Task TheSdk_WithAWrongKey_Gets401()
    {
        var chat = Server.OpenAi("sk-not-a-kiln-key").GetChatClient(KilnServerFixture.ModelId);
        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("Hello")], cancellationToken: Ct));
        Assert.Equal(401, error.Status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer kiln-key-one-012345678")] // the first key less its last character
    [InlineData("kiln-key-one-0123456789")] // the key without its scheme
    public async Task AMissingOrWrongKey_IsOpenAis401(string? authorization)
    {
        foreach (var (method, path) in new[] { ("POST", "v1/chat/completions"), ("POST", "v1/completions"), ("GET", "v1/models") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (method == "POST")
            {
                request.Content = JsonContent.Create(new { model = KilnServerFixture.ModelId, prompt = "hi", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2 });
            }

            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            using var response = await Server.Http.SendAsync(request, Ct);
            await ApiKeyAssert.InvalidApiKeyAsync(response);
        }
    }

    [Fact]
    public async Task HealthAndReady_AnswerWithoutAKey()
    {
        using var health = await Server.Http.GetAsync(new Uri("health", UriKind.Relative), Ct);
        using var ready = await Server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Theory]
    [InlineData("stats")]
    [InlineData("metrics")]
    public async Task StatsAndMetrics_Need_AnApiKeyOrTheMetricsKey(string path)
    {
        await ApiKeyAssert.InvalidApiKeyAsync(await GetAsync(path, null));
        await ApiKeyAssert.InvalidApiKeyAsync(await GetAsync(path, "not-a-key"));
        using var metricsKey = await GetAsync(path, KeyedServerFixture.MetricsKey);
        using var apiKey = await GetAsync(path, KeyedServerFixture.SecondKey);
        Assert.Equal(HttpStatusCode.OK, metricsKey.StatusCode);
        Assert.Equal(HttpStatusCode.OK, apiKey.StatusCode);
    }

    [Fact]
    public async Task TheMetricsKey_CannotRunInference_403()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = KilnServerFixture.ModelId, messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2 }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", KeyedServerFixture.MetricsKey);
        using var response = await Server.Http.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        Assert.Equal(ApiKeyRejection.ForbiddenCode, error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task TheScalersReader_WithTheMetricsKey_ReadsStats_AndWithoutIsRefused()
    {
        var root = Server.Root;
        using var http = new HttpClient();
        var stats = await new HttpPodStatsSource(http, KeyedServerFixture.MetricsKey).ReadAsync(root.Host, root.Port, "/api/stats", Ct);
        Assert.Equal(0, stats.Backlog);

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => new HttpPodStatsSource(http).ReadAsync(root.Host, root.Port, "/api/stats", Ct));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    [Fact]
    public void AnAdmittedCall_CarriesItsCaller_KeyedAnonymousOrQueued()
    {
        var keyed = new ApiAccess(new AccessSettings { ApiKeys = ApiKeySet.From([KeyedServerFixture.FirstKey]) });
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + KeyedServerFixture.FirstKey;
        keyed.Demand(context, ApiScope.Api);
        Assert.Equal(ApiKeySet.From([KeyedServerFixture.FirstKey]).Callers[0], context.Features.Get<ApiCaller>());
        Assert.StartsWith("key-", context.Features.Get<ApiCaller>()!.Id, StringComparison.Ordinal);

        var open = new ApiAccess(new AccessSettings());
        var anonymous = new DefaultHttpContext();
        anonymous.Connection.RemoteIpAddress = IPAddress.Parse("192.0.2.7");
        open.Demand(anonymous, ApiScope.Api);
        Assert.Equal(new ApiCaller("anon:192.0.2.7"), anonymous.Features.Get<ApiCaller>());

        // A queue job's context, built by the app with its caller already named, needs no key.
        var job = new DefaultHttpContext();
        job.Features.Set(new ApiCaller("queue:kiln-jobs"));
        keyed.Demand(job, ApiScope.Api);
        Assert.Equal("queue:kiln-jobs", job.Features.Get<ApiCaller>()!.Id);

        var refused = new DefaultHttpContext();
        refused.Request.Headers.Authorization = "Bearer nope";
        Assert.Throws<Kiln.Functions.OpenAi.OpenAiException>(() => keyed.Demand(refused, ApiScope.Api));
        Assert.Null(refused.Features.Get<ApiCaller>());
    }

    private async Task<HttpResponseMessage> GetAsync(string path, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await Server.Http.SendAsync(request, Ct);
    }
}
