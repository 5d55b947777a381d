using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;

namespace Kiln.Tests.Functions;

/// <summary>
/// /metrics under vLLM's names and meanings: requests (not samples) running, the KV usage as a fraction, requests by
/// finish reason with cancellations apart, prefix-cache queries and hits in tokens, the latency histograms, gauges
/// without a counter's suffix, and text every line of which Prometheus' exposition format accepts.
/// </summary>
public sealed partial class MetricsTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    private static readonly string Model = $"{{model_name=\"{KilnServerFixture.ModelId}\"}}";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RunningCountsRequests_SequencesApart_AndACancelledRequestIsAnAbort()
    {
        var server = fixture.Server;
        double aborts = await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"abort\"}}");
        double stops = await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"stop\"}}");
        double lengths = await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"length\"}}");

        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = JsonContent.Create(new { model = KilnServerFixture.ModelId, prompt = "three samples", n = 3, max_tokens = 3000, stream = true, ignore_eos = true }),
        })
        using (var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
            for (int i = 0; i < 6; i++)
            {
                Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct), StringComparison.Ordinal); // tokens flow: the samples forked
                await reader.ReadLineAsync(Ct);
            }

            Assert.Equal(1, await Value("vllm:num_requests_running" + Model)); // one request...
            Assert.Equal(3, await Value("kiln_sequences_running")); // ...of three samples
            Assert.InRange(await Value("vllm:kv_cache_usage_perc" + Model), 1e-9, 1);
        }

        // The client went away: an abort, neither a stop nor a length.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"abort\"}}") < aborts + 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "the cancelled request was not counted as an abort");
            await Task.Delay(20, Ct);
        }

        Assert.Equal(stops, await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"stop\"}}"));
        Assert.Equal(lengths, await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"length\"}}"));
        Assert.Equal(0, await Value("vllm:num_requests_running" + Model));
    }

    [Fact]
    public async Task TokensPrefixCacheLengthsAndLatencies_CountWhatHappened()
    {
        double queries = await Value("vllm:prefix_cache_queries_total" + Model);
        double hits = await Value("vllm:prefix_cache_hits_total" + Model);
        double prompt = await Value("vllm:prompt_tokens_total" + Model);
        double generated = await Value("vllm:generation_tokens_total" + Model);
        double lengths = await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"length\"}}");
        double e2e = await Value("vllm:e2e_request_latency_seconds_count" + Model);

        // The same prompt twice, 5 tokens each, ending on max_tokens: the second finds the first's full blocks cached.
        string text = string.Join(' ', Enumerable.Repeat("a shared system prompt of some length", 12));
        int promptTokens = 0;
        for (int i = 0; i < 2; i++)
        {
            using var response = await fixture.Server.Http.PostAsJsonAsync("v1/completions", new { model = KilnServerFixture.ModelId, prompt = text, max_tokens = 5, ignore_eos = true }, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var usage = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct)).GetProperty("usage");
            promptTokens = usage.GetProperty("prompt_tokens").GetInt32();
        }

        Assert.Equal(2 * promptTokens, await Value("vllm:prompt_tokens_total" + Model) - prompt);
        Assert.Equal(2 * promptTokens, await Value("vllm:prefix_cache_queries_total" + Model) - queries);
        Assert.InRange(await Value("vllm:prefix_cache_hits_total" + Model) - hits, 16, promptTokens); // at least one block of 16
        Assert.Equal(10, await Value("vllm:generation_tokens_total" + Model) - generated);
        Assert.Equal(2, await Value($"vllm:request_success_total{{model_name=\"{KilnServerFixture.ModelId}\",finished_reason=\"length\"}}") - lengths);
        Assert.Equal(2, await Value("vllm:e2e_request_latency_seconds_count" + Model) - e2e);
    }

    [Fact]
    public async Task EveryLine_IsPrometheusTextFormat_AndGaugesHaveNoCounterSuffix()
    {
        string text = await fixture.Server.Http.GetStringAsync(new Uri("metrics", UriKind.Relative), Ct);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                Assert.True(types.TryAdd(parts[2], parts[3]), $"{parts[2]} is declared twice");
                continue;
            }

            if (line.StartsWith('#'))
            {
                Assert.StartsWith("# HELP ", line, StringComparison.Ordinal);
                continue;
            }

            Assert.Matches(SampleLine(), line);
        }

        Assert.All(types.Where(t => t.Key.EndsWith("_total", StringComparison.Ordinal)), t => Assert.Equal("counter", t.Value));
        Assert.All(types.Where(t => t.Value == "counter"), t => Assert.EndsWith("_total", t.Key, StringComparison.Ordinal));
        Assert.Equal("gauge", types["kiln_kv_blocks"]);
        Assert.Equal("histogram", types["vllm:inter_token_latency_seconds"]);
    }

    private async Task<double> Value(string series) => await fixture.Server.MetricAsync(series) ?? 0;

    // name{labels} value: names and label names as the data model allows them, label values quoted.
    [GeneratedRegex("""^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$""")]
    private static partial Regex SampleLine();
}
