using System.Text;
using System.Text.Json;
using Kiln.Runtime.Chat;
using Kiln.Runtime.Chat.Tools;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Sampling;
using Kiln.Tokenization;

namespace Kiln.Functions.OpenAi;

/// <summary>The fields every response and chunk starts with: id, object, created, model.</summary>
public readonly record struct ResponseHeader(string Id, string Object, long Created, string Model);

/// <summary>One sampled token's log-probability, its alternatives and where its text starts in the choice's text.</summary>
public readonly record struct LogProbEntry(int TokenId, float LogProb, IReadOnlyList<TokenLogProb>? Top, int TextOffset);

/// <summary>A choice being accumulated for a non-streamed answer.</summary>
public sealed class ChoiceResult(int index)
{
    public int Index { get; } = index;

    public StringBuilder Text { get; } = new();

    public List<LogProbEntry> LogProbs { get; } = [];

    public FinishReason? FinishReason { get; set; }

    /// <summary>The message's content once tool calls were parsed out of the text (null: only calls).</summary>
    public string? Content { get; private set; }

    public List<ToolCall> ToolCalls { get; } = [];

    private bool _parsed;

    /// <summary>The content and calls a <see cref="Kiln.Runtime.Chat.Tools.ToolCallParser"/> found in <see cref="Text"/>.</summary>
    public void SetParsed(IReadOnlyList<ToolCallEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var content = new StringBuilder();
        foreach (var e in events)
        {
            if (e.Call is { } call)
            {
                ToolCalls.Add(call);
            }
            else
            {
                content.Append(e.Text);
            }
        }

        string text = content.ToString();
        Content = ToolCalls.Count > 0 && string.IsNullOrWhiteSpace(text) ? null : text;
        _parsed = true;
    }

    /// <summary>The message's content: the parsed content, or the whole text when no parser ran.</summary>
    public string? MessageContent => _parsed ? Content : Text.ToString();
}

/// <summary>What one chat chunk's <c>delta</c> carries.</summary>
public readonly record struct ChatDelta(bool WithRole, string? Content, int CallIndex, ToolCall? OpenedCall, string? Arguments)
{
    public static ChatDelta Role => new(true, string.Empty, -1, null, null);

    public static ChatDelta Empty => new(false, null, -1, null, null);

    public static ChatDelta Text(string text) => new(false, text, -1, null, null);

    /// <summary>A call's first chunk: index, id, type and name, with empty arguments (as OpenAI opens one).</summary>
    public static ChatDelta CallOpened(int index, ToolCall call) => new(false, null, index, call, null);

    public static ChatDelta CallArguments(int index, string arguments) => new(false, null, index, null, arguments);
}

/// <summary>Token text and bytes for log-probabilities (a model without a tokenizer shows ids).</summary>
public sealed class TokenTexts(KilnTokenizer? tokenizer)
{
    public byte[] Bytes(int id) => tokenizer is not null && (uint)id < (uint)tokenizer.VocabSize
        ? tokenizer.TokenBytes(id).ToArray()
        : Encoding.UTF8.GetBytes($"<{id}>");

    public string Text(int id) => Encoding.UTF8.GetString(Bytes(id));
}

/// <summary>
/// Writes OpenAI's response, chunk, usage and model-list shapes with <see cref="Utf8JsonWriter"/> (no reflection, one
/// pass, nothing buffered beyond the writer), so the same code serves streamed and whole answers.
/// </summary>
public static class OpenAiResponses
{
    public const string ChatCompletionObject = "chat.completion";
    public const string ChatChunkObject = "chat.completion.chunk";
    public const string CompletionObject = "text_completion";

    /// <summary>OpenAI's finish reason: <c>tool_calls</c> when the answer called tools and ended by itself.</summary>
    public static string FinishReasonText(FinishReason? reason, bool calledTools = false) => reason switch
    {
        null => string.Empty,
        FinishReason.Length => "length",
        _ when calledTools => "tool_calls",
        _ => "stop", // a cancelled request has no reader left; stop is the closest OpenAI value
    };

    public static void WriteChatCompletion(Utf8JsonWriter w, ResponseHeader header, IReadOnlyList<ChoiceResult> choices, Usage usage, TokenTexts? logProbTexts)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(choices);
        Start(w, header);
        w.WriteStartArray("choices");
        foreach (var choice in choices)
        {
            w.WriteStartObject();
            w.WriteNumber("index", choice.Index);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", choice.MessageContent);
            w.WriteNull("refusal");
            if (choice.ToolCalls.Count > 0)
            {
                w.WriteStartArray("tool_calls");
                foreach (var call in choice.ToolCalls)
                {
                    w.WriteStartObject();
                    w.WriteString("id", call.Id);
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", call.Name);
                    w.WriteString("arguments", call.Arguments);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
            WriteChatLogProbs(w, logProbTexts is null ? null : choice.LogProbs, logProbTexts);
            w.WriteString("finish_reason", FinishReasonText(choice.FinishReason, choice.ToolCalls.Count > 0));
            w.WriteEndObject();
        }

        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    public static void WriteCompletion(Utf8JsonWriter w, ResponseHeader header, IReadOnlyList<ChoiceResult> choices, Usage usage, TokenTexts? logProbTexts)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(choices);
        Start(w, header);
        w.WriteStartArray("choices");
        foreach (var choice in choices)
        {
            w.WriteStartObject();
            w.WriteNumber("index", choice.Index);
            w.WriteString("text", choice.Text.ToString());
            WriteCompletionLogProbs(w, logProbTexts is null ? null : choice.LogProbs, logProbTexts);
            w.WriteString("finish_reason", FinishReasonText(choice.FinishReason));
            w.WriteEndObject();
        }

        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    /// <summary>A chat chunk for one choice: its delta, log-probabilities, and on the last chunk only the finish reason.</summary>
    public static void WriteChatChunk(
        Utf8JsonWriter w, ResponseHeader header, int index, ChatDelta delta, IReadOnlyList<LogProbEntry>? logProbs = null, TokenTexts? texts = null, string? finishReason = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        Start(w, header);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteStartObject("delta");
        if (delta.WithRole)
        {
            w.WriteString("role", "assistant");
        }

        if (delta.Content is not null)
        {
            w.WriteString("content", delta.Content);
        }

        if (delta.CallIndex >= 0)
        {
            w.WriteStartArray("tool_calls");
            w.WriteStartObject();
            w.WriteNumber("index", delta.CallIndex);
            if (delta.OpenedCall is { } call)
            {
                w.WriteString("id", call.Id);
                w.WriteString("type", "function");
            }

            w.WriteStartObject("function");
            if (delta.OpenedCall is { } opened)
            {
                w.WriteString("name", opened.Name);
            }

            w.WriteString("arguments", delta.Arguments ?? string.Empty);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
        }

        w.WriteEndObject();
        WriteChatLogProbs(w, logProbs, texts);
        WriteFinish(w, finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteCompletionChunk(Utf8JsonWriter w, ResponseHeader header, int index, string text, IReadOnlyList<LogProbEntry>? logProbs, TokenTexts? texts, string? finishReason)
    {
        ArgumentNullException.ThrowIfNull(w);
        Start(w, header);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteString("text", text);
        WriteCompletionLogProbs(w, logProbs, texts);
        WriteFinish(w, finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>stream_options.include_usage: the last chunk, with no choices and the request's usage.</summary>
    public static void WriteUsageChunk(Utf8JsonWriter w, ResponseHeader header, Usage usage)
    {
        ArgumentNullException.ThrowIfNull(w);
        Start(w, header);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    public static void WriteModelList(Utf8JsonWriter w, string modelId, long created)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", modelId);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", "kiln");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Start(Utf8JsonWriter w, ResponseHeader header)
    {
        w.WriteStartObject();
        w.WriteString("id", header.Id);
        w.WriteString("object", header.Object);
        w.WriteNumber("created", header.Created);
        w.WriteString("model", header.Model);
    }

    private static void WriteFinish(Utf8JsonWriter w, string? finishReason)
    {
        if (finishReason is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finishReason);
        }
    }

    private static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.TotalTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", usage.CachedPromptTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Chat shape: {"content":[{token, logprob, bytes, top_logprobs:[{token, logprob, bytes}]}]}.</summary>
    private static void WriteChatLogProbs(Utf8JsonWriter w, IReadOnlyList<LogProbEntry>? entries, TokenTexts? texts)
    {
        if (entries is null || texts is null)
        {
            w.WriteNull("logprobs");
            return;
        }

        w.WriteStartObject("logprobs");
        w.WriteStartArray("content");
        foreach (var entry in entries)
        {
            w.WriteStartObject();
            WriteToken(w, texts, entry.TokenId, entry.LogProb);
            w.WriteStartArray("top_logprobs");
            foreach (var top in entry.Top ?? [])
            {
                w.WriteStartObject();
                WriteToken(w, texts, top.Id, top.LogProb);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteToken(Utf8JsonWriter w, TokenTexts texts, int id, float logProb)
    {
        byte[] bytes = texts.Bytes(id);
        w.WriteString("token", Encoding.UTF8.GetString(bytes));
        w.WriteNumber("logprob", logProb);
        w.WriteStartArray("bytes");
        foreach (byte b in bytes)
        {
            w.WriteNumberValue(b);
        }

        w.WriteEndArray();
    }

    /// <summary>Completions shape: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.</summary>
    private static void WriteCompletionLogProbs(Utf8JsonWriter w, IReadOnlyList<LogProbEntry>? entries, TokenTexts? texts)
    {
        if (entries is null || texts is null)
        {
            w.WriteNull("logprobs");
            return;
        }

        w.WriteStartObject("logprobs");
        w.WriteStartArray("tokens");
        foreach (var e in entries)
        {
            w.WriteStringValue(texts.Text(e.TokenId));
        }

        w.WriteEndArray();
        w.WriteStartArray("token_logprobs");
        foreach (var e in entries)
        {
            w.WriteNumberValue(e.LogProb);
        }

        w.WriteEndArray();
        w.WriteStartArray("top_logprobs");
        foreach (var e in entries)
        {
            // A JSON object cannot repeat a key: two ids that decode to the same text keep the likelier one.
            w.WriteStartObject();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var top in e.Top ?? [])
            {
                string text = texts.Text(top.Id);
                if (seen.Add(text))
                {
                    w.WriteNumber(text, top.LogProb);
                }
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("text_offset");
        foreach (var e in entries)
        {
            w.WriteNumberValue(e.TextOffset);
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }
}
