using System.Text;
using System.Text.Json;
using Kiln.Runtime.Chat;
using Kiln.Runtime.Sampling;

namespace Kiln.Functions.OpenAi;

/// <summary>One prompt of a completions request: text, or token ids used as given.</summary>
public sealed record PromptInput(string? Text, IReadOnlyList<int>? TokenIds);

/// <summary>What every generation request shares, parsed and mapped onto the engine's <see cref="SamplingParams"/>.</summary>
public sealed record GenerationOptions(string Model, SamplingParams Sampling, bool Stream, bool IncludeUsage, bool LogProbs, string? User);

/// <summary>A parsed <c>POST v1/chat/completions</c> body.</summary>
public sealed record ChatCompletionRequest(IReadOnlyList<ChatMessage> Messages, GenerationOptions Options);

/// <summary>A parsed <c>POST v1/completions</c> body.</summary>
public sealed record CompletionRequest(IReadOnlyList<PromptInput> Prompts, GenerationOptions Options);

/// <summary>
/// Parses OpenAI request bodies. Types and OpenAI-only bounds are checked here; the engine's own ranges are checked by
/// <see cref="SamplingParams.Validate"/> (its ArgumentException names the OpenAI parameter). Unknown fields are
/// ignored, as OpenAI clients send many.
/// </summary>
public static class OpenAiRequests
{
    /// <summary>OpenAI's temperature range (the engine accepts any non-negative value).</summary>
    public const double MaxTemperature = 2;

    /// <summary>OpenAI's bound on <c>n</c>.</summary>
    public const int MaxN = 128;

    /// <summary>Most prompts one completions call may carry (each is a request; more belong in a queue job).</summary>
    public const int MaxPrompts = 128;

    public static ChatCompletionRequest ParseChat(JsonElement body)
    {
        var fields = JsonFields.Of(body);
        var messages = fields.Required("messages");
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType("messages", "an array", messages);
        }

        var parsed = new List<ChatMessage>();
        int i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            parsed.Add(ParseMessage(message, i++));
        }

        if (parsed.Count == 0)
        {
            throw OpenAiException.BadRequest("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages", "empty_array");
        }

        bool logprobs = fields.Bool("logprobs") ?? false;
        int? top = fields.Int32("top_logprobs");
        if (top is not null && !logprobs)
        {
            throw OpenAiException.BadRequest("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value");
        }

        if (top is < 0 or > SamplingParams.MaxLogProbs)
        {
            throw OpenAiException.BadRequest($"Invalid 'top_logprobs': must be in [0, {SamplingParams.MaxLogProbs}].", "top_logprobs", "invalid_value");
        }

        int? logProbs = logprobs ? top ?? 0 : null;
        return new ChatCompletionRequest(parsed, ParseOptions(fields, logProbs, logprobs));
    }

    public static CompletionRequest ParseCompletion(JsonElement body)
    {
        var fields = JsonFields.Of(body);
        var prompts = ParsePrompts(fields.Required("prompt"));
        if (fields.Bool("echo") == true)
        {
            throw OpenAiException.BadRequest("'echo' is not supported.", "echo", "unsupported_parameter");
        }

        int? logProbs = fields.Int32("logprobs");
        return new CompletionRequest(prompts, ParseOptions(fields, logProbs, logProbs is not null));
    }

    private static GenerationOptions ParseOptions(JsonFields fields, int? logProbs, bool wantLogProbs)
    {
        string model = fields.String("model", required: true)!;
        double temperature = fields.Number("temperature") ?? 1;
        if (temperature is < 0 or > MaxTemperature)
        {
            throw OpenAiException.BadRequest(
                $"Invalid 'temperature': {temperature} is out of range. Expected a value in [0, {MaxTemperature}].", "temperature", "invalid_value");
        }

        long? seed = fields.Integer("seed");
        bool stream = fields.Bool("stream") ?? false;
        bool includeUsage = false;
        if (fields.TryGet("stream_options", out var streamOptions))
        {
            var options = JsonFields.Of(streamOptions.ValueKind == JsonValueKind.Object ? streamOptions : throw JsonFields.WrongType("stream_options", "an object", streamOptions));
            includeUsage = options.Bool("include_usage") ?? false;
        }

        var sampling = new SamplingParams
        {
            Temperature = (float)temperature,
            TopP = (float)(fields.Number("top_p") ?? 1),
            N = ParseN(fields),
            MaxTokens = fields.Int32("max_completion_tokens") ?? fields.Int32("max_tokens"),
            Stop = fields.Strings("stop"),
            Seed = seed is long s ? unchecked((ulong)s) : null,
            PresencePenalty = (float)(fields.Number("presence_penalty") ?? 0),
            FrequencyPenalty = (float)(fields.Number("frequency_penalty") ?? 0),
            LogProbs = logProbs,

            // vLLM's extensions, cheap to accept since the engine has them.
            TopK = fields.Int32("top_k") ?? 0,
            MinP = (float)(fields.Number("min_p") ?? 0),
            RepetitionPenalty = (float)(fields.Number("repetition_penalty") ?? 1),
            IgnoreEos = fields.Bool("ignore_eos") ?? false,
        };
        return new GenerationOptions(model, sampling, stream, includeUsage, wantLogProbs, fields.String("user"));
    }

    private static int ParseN(JsonFields fields)
    {
        int n = fields.Int32("n") ?? 1;
        return n is >= 1 and <= MaxN
            ? n
            : throw OpenAiException.BadRequest($"Invalid 'n': {n} is out of range. Expected a value in [1, {MaxN}].", "n", "invalid_value");
    }

    private static ChatMessage ParseMessage(JsonElement message, int index)
    {
        string param = $"messages[{index}]";
        if (message.ValueKind != JsonValueKind.Object)
        {
            throw JsonFields.WrongType(param, "an object", message);
        }

        var fields = JsonFields.Of(message);
        string role = fields.TryGet("role", out var r)
            ? r.ValueKind == JsonValueKind.String ? JsonFields.Text(r, $"{param}.role") : throw JsonFields.WrongType($"{param}.role", "a string", r)
            : throw JsonFields.Missing($"{param}.role");
        if (role is not (ChatMessage.System or ChatMessage.Developer or ChatMessage.User or ChatMessage.Assistant or "tool"))
        {
            throw OpenAiException.BadRequest(
                $"Invalid value for '{param}.role': '{role}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", $"{param}.role", "invalid_value");
        }

        // Assistant messages may carry tool calls and no content; everything else needs text.
        if (!fields.TryGet("content", out var content))
        {
            return role == ChatMessage.Assistant ? new ChatMessage(role, string.Empty) : throw JsonFields.Missing($"{param}.content");
        }

        return new ChatMessage(role, ContentText(content, $"{param}.content"));
    }

    /// <summary>A message's content: a string, or an array of parts of which only text parts are supported.</summary>
    private static string ContentText(JsonElement content, string param)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return JsonFields.Text(content, param);
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType(param, "a string or an array of content parts", content);
        }

        var text = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            var fields = JsonFields.Of(part.ValueKind == JsonValueKind.Object ? part : throw JsonFields.WrongType(param, "an array of content parts", content));
            string? type = fields.String("type");
            if (type != "text")
            {
                throw OpenAiException.BadRequest($"Invalid content part type '{type}' in '{param}': only 'text' is supported.", param, "unsupported_content");
            }

            text.Append(fields.String("text", required: true));
        }

        return text.ToString();
    }

    /// <summary><c>prompt</c>: a string, an array of strings, an array of token ids, or an array of token-id arrays.</summary>
    private static List<PromptInput> ParsePrompts(JsonElement prompt)
    {
        const string Expected = "a string, an array of strings, an array of integers or an array of integer arrays";
        if (prompt.ValueKind == JsonValueKind.String)
        {
            return [new PromptInput(JsonFields.Text(prompt, "prompt"), null)];
        }

        if (prompt.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType("prompt", Expected, prompt);
        }

        var items = prompt.EnumerateArray().ToList();
        if (items.Count == 0)
        {
            throw OpenAiException.BadRequest("Invalid 'prompt': empty array.", "prompt", "empty_array");
        }

        if (items.Count > MaxPrompts && !items.All(i => i.ValueKind == JsonValueKind.Number))
        {
            throw OpenAiException.BadRequest(
                $"Invalid 'prompt': {items.Count} prompts in one call; at most {MaxPrompts} are allowed. Send more as separate calls or as a queue job.", "prompt", "too_many_prompts");
        }

        if (items.All(i => i.ValueKind == JsonValueKind.Number))
        {
            return [new PromptInput(null, TokenIds(prompt))];
        }

        var result = new List<PromptInput>(items.Count);
        foreach (var item in items)
        {
            result.Add(item.ValueKind switch
            {
                JsonValueKind.String => new PromptInput(JsonFields.Text(item, "prompt"), null),
                JsonValueKind.Array => new PromptInput(null, TokenIds(item)),
                _ => throw JsonFields.WrongType("prompt", Expected, prompt),
            });
        }

        return result;
    }

    private static int[] TokenIds(JsonElement array)
    {
        var ids = new List<int>();
        foreach (var item in array.EnumerateArray())
        {
            ids.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id)
                ? id
                : throw JsonFields.WrongType("prompt", "an array of integer token ids", array));
        }

        return ids.Count > 0 ? [.. ids] : throw OpenAiException.BadRequest("Invalid 'prompt': empty token array.", "prompt", "empty_array");
    }
}
