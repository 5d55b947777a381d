using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Kiln.Tests.Functions;

/// <summary>
/// Where OpenAI's API has a shape clients rely on beyond the fields: the stream's last chunk per choice, the legacy
/// completions default of 16 tokens, and errors for unknown URLs and methods.
/// </summary>
public sealed class OpenAiFidelityTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("v1/chat/completions", "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]")]
    [InlineData("v1/completions", "\"prompt\":\"Once upon a time\"")]
    public async Task Stream_EndsEachChoiceWithAChunkThatCarriesOnlyTheFinishReason(string path, string input)
    {
        string body = $"{{\"model\":\"{KilnServerFixture.ModelId}\",{input},\"max_tokens\":5,\"ignore_eos\":true,\"temperature\":0,\"n\":2,\"stream\":true}}";
        using var response = await PostAsync(path, body);
        var (chunks, done) = await Sse.ReadAllAsync(response);
        Assert.True(done);
        bool chat = path.Contains("chat", StringComparison.Ordinal);
        for (int index = 0; index < 2; index++)
        {
            var mine = chunks.Select(c => c.GetProperty("choices")[0]).Where(c => c.GetProperty("index").GetInt32() == index).ToList();
            var finished = mine.Where(c => c.GetProperty("finish_reason").ValueKind != JsonValueKind.Null).ToList();
            var last = Assert.Single(finished);
            Assert.Equal("length", last.GetProperty("finish_reason").GetString());
            Assert.Equal(last.ToString(), mine[^1].ToString()); // the finish chunk is the choice's last
            if (chat)
            {
                Assert.Empty(last.GetProperty("delta").EnumerateObject()); // delta: {}
            }
            else
            {
                Assert.Equal(string.Empty, last.GetProperty("text").GetString());
            }

            // Every token's text came before it, in chunks whose finish_reason is null.
            int textChunks = mine.Count(c => chat
                ? c.GetProperty("delta").TryGetProperty("content", out var t) && t.GetString()!.Length > 0
                : c.GetProperty("text").GetString()!.Length > 0);
            Assert.InRange(textChunks, 1, 5);
        }
    }

    [Fact]
    public async Task Completions_WithoutMaxTokens_GenerateSixteenTokens()
    {
        using var response = await PostAsync("v1/completions", $"{{\"model\":\"{KilnServerFixture.ModelId}\",\"prompt\":\"Once upon a time\",\"ignore_eos\":true}}");
        var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(16, answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task UnknownUrl_Is404WithAnOpenAiErrorBody()
    {
        using var response = await fixture.Server.Http.GetAsync("v1/engines", Ct);
        var error = await ErrorAsync(response, HttpStatusCode.NotFound);
        Assert.Contains("Invalid URL (GET /api/v1/engines)", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongMethod_Is405WithAnOpenAiErrorBodyAndAllow()
    {
        using var response = await fixture.Server.Http.GetAsync("v1/chat/completions", Ct);
        var error = await ErrorAsync(response, HttpStatusCode.MethodNotAllowed);
        Assert.Contains("Invalid method for URL (GET /api/v1/chat/completions)", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("POST", string.Join(",", response.Content.Headers.Allow));
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == response.StatusCode, $"expected {status}, got {response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        return error;
    }

    private async Task<HttpResponseMessage> PostAsync(string path, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return await fixture.Server.Http.PostAsync(path, content, Ct);
    }
}
