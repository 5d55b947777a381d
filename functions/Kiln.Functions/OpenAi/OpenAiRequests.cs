using System.Text.Json;
using Kiln.Runtime.Chat;
using Kiln.Runtime.Sampling;

namespace Kiln.Functions.OpenAi;

/// <summary>One prompt of a completions request: text, or token ids used as given.</summary>
public sealed record PromptInput(string? Text, IReadOnlyList<int>? TokenIds);

/// <summary>What every generation request shares, parsed and mapped onto the engine's <see cref="SamplingParams"/>.</summary>
public sealed record GenerationOptions(string Model, SamplingParams Sampling, bool Stream, bool IncludeUsage, bool LogProbs, string? User);

/// <summary>
/// A parsed <c>POST v1/chat/completions</c> body: the conversation, the tools and the format the answer must take, and
/// <c>chat_template_kwargs</c> (vLLM's extension: extra variables for the model's template, e.g. enable_thinking).
/// </summary>
public sealed record ChatCompletionRequest(
    IReadOnlyList<ChatMessage> Messages, GenerationOptions Options, ToolOptions Tools, ResponseFormat Format, JsonElement? TemplateArguments = null);

/// <summary>A parsed <c>POST v1/completions</c> body.</summary>
public sealed record CompletionRequest(IReadOnlyList<PromptInput> Prompts, GenerationOptions Options, ResponseFormat Format);

/// <summary>
/// Parses OpenAI request bodies. Types and OpenAI's bounds are checked here, worded as OpenAI words them; the engine's
/// own ranges are checked by <see cref="SamplingParams.Validate"/> (its ArgumentException names the parameter).
/// Fields OpenAI clients send by default or that change nothing here are accepted (metadata, store: false, user,
/// service_tier, ...); a field that asks for something Kiln does not do (audio, predicted outputs, best_of, suffix,
/// echo, ...) is a 400 naming it, never silently ignored.
/// </summary>
public static class OpenAiRequests
{
    /// <summary>OpenAI's temperature range (the engine accepts any non-negative value).</summary>
    public const double MaxTemperature = 2;

    /// <summary>OpenAI's bound on <c>n</c>.</summary>
    public const int MaxN = 128;

    /// <summary>Most prompts one completions call may carry (each is a request; more belong in a queue job).</summary>
    public const int MaxPrompts = 128;

    /// <summary>What <c>/v1/completions</c> generates when <c>max_tokens</c> is not given, as OpenAI's does.</summary>
    public const int DefaultCompletionTokens = 16;

    /// <summary>The legacy completions API's bound on <c>logprobs</c>.</summary>
    public const int MaxCompletionLogProbs = 5;

    public static ChatCompletionRequest ParseChat(JsonElement body)
    {
        var fields = JsonFields.Of(body);
        var messages = ChatMessageParser.ParseAll(fields.Required("messages"));
        RefuseUnsupported(fields, ChatOnly);
        if (fields.TryGet("modalities", out var modalities) && modalities.ValueKind == JsonValueKind.Array
            && modalities.EnumerateArray().Any(m => m.ValueKind != JsonValueKind.String || m.GetString() != "text"))
        {
            throw JsonFields.Unsupported("modalities", "Kiln serves text models, so only [\"text\"] is supported");
        }

        bool logprobs = fields.Bool("logprobs") ?? false;
        int? top = fields.Int32("top_logprobs", 0, SamplingParams.MaxLogProbs);
        if (top is not null && !logprobs)
        {
            throw OpenAiException.BadRequest("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is set.", "top_logprobs", "invalid_value");
        }

        int? logProbs = logprobs ? top ?? 0 : null;
        JsonElement? kwargs = null;
        if (fields.TryGet("chat_template_kwargs", out var extra))
        {
            kwargs = extra.ValueKind == JsonValueKind.Object ? extra.Clone() : throw JsonFields.WrongType("chat_template_kwargs", "an object", extra);
        }

        var options = ParseOptions(fields, logProbs, logprobs, defaultMaxTokens: null);
        return new ChatCompletionRequest(messages, options, ToolRequests.Parse(fields), ResponseFormat.Parse(fields), kwargs);
    }

    public static CompletionRequest ParseCompletion(JsonElement body)
    {
        var fields = JsonFields.Of(body);
        var prompts = ParsePrompts(fields.Required("prompt"));
        RefuseUnsupported(fields, CompletionOnly);
        if (fields.Bool("echo") == true)
        {
            throw JsonFields.Unsupported("echo", "the prompt is not returned with the completion");
        }

        int n = fields.Int32("n") ?? 1;
        if (fields.Int32("best_of") is int bestOf && bestOf != n)
        {
            throw JsonFields.Unsupported("best_of", "Kiln returns every sample it generates; ask for them with 'n'");
        }

        int? logProbs = fields.Int32("logprobs", 0, MaxCompletionLogProbs);
        var options = ParseOptions(fields, logProbs, logProbs is not null, DefaultCompletionTokens);
        return new CompletionRequest(prompts, options, ResponseFormat.Parse(fields));
    }

    /// <summary>Chat fields asking for what a text model served here does not do.</summary>
    private static readonly (string Field, string Why)[] ChatOnly =
    [
        ("audio", "Kiln serves text models"),
        ("prediction", "predicted outputs are not implemented"),
        ("web_search_options", "Kiln has no web search"),
    ];

    private static readonly (string Field, string Why)[] CompletionOnly =
    [
        ("suffix", "insertion (fill in the middle) is not implemented"),
    ];

    private static void RefuseUnsupported(JsonFields fields, (string Field, string Why)[] refused)
    {
        foreach (var (field, why) in refused)
        {
            if (fields.TryGet(field, out var value) && !(value.ValueKind == JsonValueKind.String && value.GetString()?.Length == 0))
            {
                throw JsonFields.Unsupported(field, why);
            }
        }

        if (fields.TryGet("logit_bias", out var bias) && !(bias.ValueKind == JsonValueKind.Object && !bias.EnumerateObject().Any()))
        {
            throw JsonFields.Unsupported("logit_bias", "logit biases are not implemented");
        }

        if (fields.Bool("store") == true)
        {
            throw JsonFields.Unsupported("store", "Kiln keeps no completions after answering");
        }
    }

    private static GenerationOptions ParseOptions(JsonFields fields, int? logProbs, bool wantLogProbs, int? defaultMaxTokens)
    {
        string model = fields.String("model", required: true)!;
        double temperature = fields.Number("temperature", 0, MaxTemperature) ?? 1;
        long? seed = fields.Integer("seed");
        bool stream = fields.Bool("stream") ?? false;
        bool includeUsage = false;
        if (fields.TryGet("stream_options", out var streamOptions))
        {
            var options = JsonFields.Of(streamOptions.ValueKind == JsonValueKind.Object ? streamOptions : throw JsonFields.WrongType("stream_options", "an object", streamOptions));
            includeUsage = options.Bool("include_usage") ?? false;
        }

        string[] stop = fields.Strings("stop");
        if (stop.Length > SamplingParams.MaxStopStrings)
        {
            throw JsonFields.TooLong("stop", SamplingParams.MaxStopStrings, stop.Length);
        }

        var sampling = new SamplingParams
        {
            Temperature = (float)temperature,
            TopP = (float)(fields.Number("top_p", 0, 1) ?? 1),
            N = fields.Int32("n", 1, MaxN) ?? 1,
            MaxTokens = fields.Int32("max_completion_tokens", 1, int.MaxValue) ?? fields.Int32("max_tokens", 1, int.MaxValue) ?? defaultMaxTokens,
            Stop = stop,
            Seed = seed is long s ? unchecked((ulong)s) : null,
            PresencePenalty = (float)(fields.Number("presence_penalty", -2, 2) ?? 0),
            FrequencyPenalty = (float)(fields.Number("frequency_penalty", -2, 2) ?? 0),
            LogProbs = logProbs,

            // vLLM's extensions, cheap to accept since the engine has them.
            TopK = fields.Int32("top_k") ?? 0,
            MinP = (float)(fields.Number("min_p") ?? 0),
            RepetitionPenalty = (float)(fields.Number("repetition_penalty") ?? 1),
            IgnoreEos = fields.Bool("ignore_eos") ?? false,
        };
        return new GenerationOptions(model, sampling, stream, includeUsage, wantLogProbs, fields.String("user"));
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
