using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Kiln.Tests.Functions;

/// <summary>Each bad request gets its status and an OpenAI-style error body naming the field at fault.</summary>
public sealed class BadInputTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    private const string M = "\"model\":\"model.gguf\"";
    private const string Hi = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    private const string Tool = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}";

    public static TheoryData<string, string, int, string?, string?> Cases { get; } = new()
    {
        // path, body ({long} = a prompt longer than the context), status, param, code
        { "v1/chat/completions", "{" + M + ", \"messages\": [", 400, null, "invalid_json" },
        { "v1/chat/completions", "[1, 2]", 400, null, "invalid_type" },
        { "v1/chat/completions", "{" + M + "}", 400, "messages", "missing_required_parameter" },
        { "v1/chat/completions", "{" + Hi + "}", 400, "model", "missing_required_parameter" },
        { "v1/chat/completions", "{" + M + ", \"messages\": \"hi\"}", 400, "messages", "invalid_type" },
        { "v1/chat/completions", "{" + M + ", \"messages\": []}", 400, "messages", "empty_array" },
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400, "messages[0].role", "invalid_value" },
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"user\"}]}", 400, "messages[0].content", "missing_required_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"temperature\": \"hot\"}", 400, "temperature", "invalid_type" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"temperature\": 3}", 400, "temperature", "decimal_above_max_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"n\": 0}", 400, "n", "integer_below_min_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"n\": 1.5}", 400, "n", "invalid_type" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"n\": 129}", 400, "n", "integer_above_max_value" }, // OpenAI's bound
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"n\": 20000}", 400, "n", "integer_above_max_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"n\": 100}", 400, "n", "invalid_value" }, // over the engine's 64 running
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"user\",\"content\":\"a\\ud800b\"}]}", 400, "messages[0].content", "invalid_encoding" },
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\\udfff\"}]}]}", 400, "text", "invalid_encoding" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"stop\": \"\\ud83d\"}", 400, "stop", "invalid_encoding" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"top_p\": 0}", 400, "top_p", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"max_tokens\": 0}", 400, "max_tokens", "integer_below_min_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"presence_penalty\": 5}", 400, "presence_penalty", "decimal_above_max_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop", "array_above_max_length" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"stop\": 7}", 400, "stop", "invalid_type" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"stream\": \"yes\"}", 400, "stream", "invalid_type" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"top_logprobs\": 2}", 400, "top_logprobs", "invalid_value" },
        { "v1/chat/completions", "{\"model\":\"gpt-4o\"," + Hi + "}", 404, "model", "model_not_found" },
        { "v1/chat/completions", "{" + M + ", \"max_tokens\": 16, \"messages\": [{\"role\":\"user\",\"content\":\"{long}\"}]}", 400, "messages", "context_length_exceeded" },
        { "v1/completions", "{" + M + "}", 400, "prompt", "missing_required_parameter" },
        { "v1/completions", "{" + M + ", \"prompt\": 5}", 400, "prompt", "invalid_type" },
        { "v1/completions", "{" + M + ", \"prompt\": [1, \"a\"]}", 400, "prompt", "invalid_type" },
        { "v1/completions", "{" + M + ", \"prompt\": [99999]}", 400, "prompt", "invalid_value" },
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"logprobs\": 30}", 400, "logprobs", "integer_above_max_value" },
        { "v1/completions", "{" + M + ", \"prompt\": \"{long}\"}", 400, "prompt", "context_length_exceeded" },
        { "v1/completions", "{" + M + ", \"prompt\": \"\\ud800\"}", 400, "prompt", "invalid_encoding" },
        { "v1/completions", "{" + M + ", \"prompt\": [" + string.Join(',', Enumerable.Repeat("\"hi\"", 129)) + "]}", 400, "prompt", "too_many_prompts" },
        { "v1/completions", "{" + M + ", \"prompt\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"], \"n\": 60}", 400, "n", "invalid_value" }, // 360 sequences: never fits 64 + 256
        { "v1/completions", "{\"model\":\"other\", \"prompt\": \"hi\"}", 404, "model", "model_not_found" },

        // What Kiln does not implement is refused by name, never ignored.
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"logprobs\": 6}", 400, "logprobs", "integer_above_max_value" }, // the legacy API's 5
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"best_of\": 3}", 400, "best_of", "unsupported_parameter" },
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"suffix\": \"end\"}", 400, "suffix", "unsupported_parameter" },
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"echo\": true}", 400, "echo", "unsupported_parameter" },
        { "v1/completions", "{" + M + ", \"prompt\": \"hi\", \"logit_bias\": {\"50256\": -100}}", 400, "logit_bias", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"audio\": {\"voice\": \"alloy\", \"format\": \"wav\"}}", 400, "audio", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"modalities\": [\"text\", \"audio\"]}", 400, "modalities", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"prediction\": {\"type\": \"content\", \"content\": \"x\"}}", 400, "prediction", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"functions\": [{\"name\": \"f\"}]}", 400, "functions", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"store\": true}", 400, "store", "unsupported_parameter" },
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}", 400, "messages[0].content[0].type", "unsupported_content" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tool_choice\": \"required\"}", 400, "tool_choice", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tool_choice\": \"always\", \"tools\": [" + Tool + "]}", 400, "tool_choice", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"other\"}}, \"tools\": [" + Tool + "]}", 400, "tool_choice.function.name", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get weather\"}}]}", 400, "tools[0].function.name", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tools\": [{\"type\": \"code_interpreter\"}]}", 400, "tools[0].type", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"tools\": [" + Tool + "," + Tool + "]}", 400, "tools[1].function.name", "invalid_value" },
        { "v1/chat/completions", "{" + M + ", \"messages\": [{\"role\":\"tool\",\"content\":\"20 C\"}]}", 400, "messages[0].tool_call_id", "missing_required_parameter" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"response_format\": {\"type\": \"yaml\"}}", 400, "response_format.type", "invalid_value" },
        { "v1/chat/completions", "{" + M + "," + Hi + ", \"response_format\": {\"type\": \"json_schema\"}}", 400, "response_format.json_schema", "missing_required_parameter" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadRequest_GetsStatusAndOpenAiErrorBody(string path, string body, int status, string? param, string? code)
    {
        ArgumentNullException.ThrowIfNull(body);
        string longText = string.Join(' ', Enumerable.Repeat("the little dog", 2000)); // well past the 4096-token context
        using var content = new StringContent(body.Replace("{long}", longText, StringComparison.Ordinal), Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await fixture.Server.Http.PostAsync(path, content, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        Assert.True(status == (int)response.StatusCode, $"expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
    }
}
