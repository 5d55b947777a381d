using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Kiln.Scaler.Contracts;

namespace Kiln.Tests.Functions;

/// <summary>health, ready, v1/models and metrics on a loaded app.</summary>
public sealed class OperationalTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Health_AnswersOk()
    {
        using var response = await fixture.Server.Http.GetAsync(new Uri("health", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Ready_AnswersOkOnceLoaded()
    {
        using var response = await fixture.Server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("ready", body.GetProperty("status").GetString());
        Assert.Equal(KilnServerFixture.ModelId, body.GetProperty("model").GetString());
    }

    [Fact]
    public async Task Models_HasOpenAiShape()
    {
        var body = await fixture.Server.Http.GetFromJsonAsync<JsonElement>(new Uri("v1/models", UriKind.Relative), Ct);
        Assert.Equal("list", body.GetProperty("object").GetString());
        var model = Assert.Single(body.GetProperty("data").EnumerateArray());
        Assert.Equal(KilnServerFixture.ModelId, model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.True(model.GetProperty("created").GetInt64() > 1_600_000_000);
    }

    [Fact]
    public async Task Stats_AreReadByTheScalersOwnPodStatsReader()
    {
        // The contract between the app and the KEDA scaler: the scaler's reader parses what the app serves.
        using var http = new HttpClient();
        var reader = new Kiln.Scaler.Sources.HttpPodStatsSource(http);
        var root = fixture.Server.Root;
        var idle = await reader.ReadAsync(root.Host, root.Port, "/api/stats", Ct);
        Assert.Equal(0, idle.Backlog);

        // While a long generation runs, the backlog and the running count show it.
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var body = new { model = KilnServerFixture.ModelId, prompt = "busy", max_tokens = 3000, ignore_eos = true, stream = true };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = JsonContent.Create(body) };
        using var response = await fixture.Server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        PodStatsDocument busy;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        do
        {
            busy = await reader.ReadAsync(root.Host, root.Port, "/api/stats", Ct);
        }
        while (busy.RunningSequences == 0 && DateTime.UtcNow < deadline);

        Assert.Equal(1, busy.RunningSequences);
        Assert.InRange(busy.Backlog, 1, 3000 + 10);
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Metrics_ArePrometheusTextWithEngineStatsAndLatencyHistograms()
    {
        var server = fixture.Server;
        using (var warm = await server.Http.PostAsJsonAsync("v1/completions", new { model = KilnServerFixture.ModelId, prompt = "The sun", max_tokens = 4, ignore_eos = true }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        using var response = await server.Http.GetAsync(new Uri("metrics", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync(Ct);
        foreach (string name in new[]
        {
            "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "kiln_sequences_running", "kiln_token_backlog",
            "kiln_kv_blocks", "kiln_kv_blocks_used", "kiln_kv_blocks_free", "kiln_kv_blocks_cached", "kiln_generation_tokens_per_second", "kiln_prompt_tokens_per_second",
        })
        {
            Assert.Contains($"# TYPE {name} gauge", text, StringComparison.Ordinal);
        }

        foreach (string name in new[] { "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:e2e_request_latency_seconds" })
        {
            Assert.Contains($"# TYPE {name} histogram", text, StringComparison.Ordinal);
        }

        string model = $"{{model_name=\"{KilnServerFixture.ModelId}\"}}";
        Assert.True(await server.MetricAsync("vllm:time_to_first_token_seconds_count" + model) >= 1);
        Assert.True(await server.MetricAsync("vllm:inter_token_latency_seconds_count" + model) >= 3);
        Assert.True(await server.MetricAsync("vllm:e2e_request_latency_seconds_count" + model) >= 1);
        Assert.Equal(1, await server.MetricAsync("kiln_model_loaded"));
        Assert.True(await server.MetricAsync("kiln_kv_blocks_free") > 0);
        Assert.True(await server.MetricAsync("kiln_http_requests_total{endpoint=\"completions\",status=\"200\"}") >= 1);
    }
}
