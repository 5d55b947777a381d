using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Kiln.Functions.Hosting;
using Kiln.Runtime.Loading;
using Kiln.Tests.Reference;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;

namespace Kiln.Tests.Functions;

/// <summary>503 while the model loads or after it failed, 429 when the engine's queue is full, cancellation on disconnect.</summary>
public sealed class LifecycleTests
{
    private static readonly object ChatBody = new { model = KilnServerFixture.ModelId, messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2 };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WhileLoading_ReadyAndApiAnswer503_HealthAnswers200()
    {
        using var file = new TempGguf(KilnServerFixture.ModelOptions);
        using var release = new ManualResetEventSlim();
        await using var server = await KilnServer.StartAsync(file.Path, configure: b => b.Services.AddSingleton<ModelLoadFunc>(path =>
        {
            release.Wait(TimeSpan.FromMinutes(1)); // hold the load until the test has seen the loading state
            return ModelLoader.Load(path);
        }));

        using (var ready = await server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Equal("loading", (await ready.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("status").GetString());
        }

        using (var health = await server.Http.GetAsync(new Uri("health", UriKind.Relative), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var chat = await server.Http.PostAsJsonAsync("v1/chat/completions", ChatBody, Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
            var error = (await chat.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.Equal("model_loading", error.GetProperty("code").GetString());
        }

        release.Set();
        await server.WaitUntilLoadedAsync();
        using var after = await server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task FailedLoad_ReadyAndApiAnswer503WithTheReason()
    {
        await using var server = await KilnServer.StartAsync(Path.Combine(Path.GetTempPath(), $"kiln-missing-{Guid.NewGuid():N}.gguf"));
        await server.WaitUntilLoadedAsync();

        using var ready = await server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var body = await ready.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("failed", body.GetProperty("status").GetString());
        Assert.Contains("no such model file", body.GetProperty("error").GetString(), StringComparison.Ordinal);

        using var chat = await server.Http.PostAsJsonAsync("v1/completions", new { model = "x", prompt = "hi" }, Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
    }

    [Fact]
    public async Task FullAdmissionQueue_Answers429()
    {
        using var file = new TempGguf(KilnServerFixture.ModelOptions);

        // One sequence may run and none wait: while a long stream holds the one place, every other call is refused.
        await using var server = await KilnServer.StartAsync(file.Path, ["Kiln:MaxWaitingRequests=0", "Kiln:MaxSequences=1"]);
        await server.WaitUntilLoadedAsync();
        using var holder = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = JsonContent.Create(new { model = KilnServerFixture.ModelId, prompt = "hold", max_tokens = 4000, stream = true, ignore_eos = true }),
        };
        using var held = await server.Http.SendAsync(holder, HttpCompletionOption.ResponseHeadersRead, Ct); // headers come once it is admitted
        Assert.Equal(HttpStatusCode.OK, held.StatusCode);

        using var raw = await server.Http.PostAsJsonAsync("v1/chat/completions", ChatBody, Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, raw.StatusCode);
        var error = (await raw.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Equal("engine_overloaded", error.GetProperty("code").GetString());
        Assert.Contains("overloaded", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        var sdk = server.OpenAi().GetChatClient(KilnServerFixture.ModelId);
        var thrown = await Assert.ThrowsAsync<ClientResultException>(() => sdk.CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));
        Assert.Equal(429, thrown.Status);
    }

    [Fact]
    public async Task ClientDisconnectMidStream_CancelsTheRequestAndFreesItsBlocks()
    {
        using var file = new TempGguf(KilnServerFixture.ModelOptions);
        await using var server = await KilnServer.StartAsync(file.Path);
        await server.WaitUntilLoadedAsync();
        var engine = server.Model.Engine!;

        // A generation of thousands of tokens, far longer than the test waits for.
        var body = new { model = KilnServerFixture.ModelId, prompt = "Once upon a time", max_tokens = 4000, ignore_eos = true, stream = true };
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = JsonContent.Create(body) })
        using (var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct), StringComparison.Ordinal);
            Assert.True(engine.GetStats().KvBlocksUsed > 0, "the running request holds KV blocks");
        }

        // Disposing the response closed the connection mid-stream.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline && (await server.MetricAsync("kiln_kv_blocks_used") != 0 || await server.MetricAsync("kiln_sequences_running") != 0))
        {
            await Task.Delay(50, Ct);
        }

        var stats = engine.GetStats();
        Assert.Equal(0, stats.KvBlocksUsed);
        Assert.Equal(0, stats.RunningSequences);
        Assert.Equal(0, await server.MetricAsync("kiln_kv_blocks_used"));
        Assert.Equal(1, await server.MetricAsync("kiln_http_requests_total{endpoint=\"completions\",status=\"aborted\"}"));
        Assert.Null(await server.MetricAsync("kiln_http_requests_total{endpoint=\"completions\",status=\"200\"}"));
    }
}
