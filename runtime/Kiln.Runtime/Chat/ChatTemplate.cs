using System.Text.Json;
using Kiln.Runtime.Chat.Tools;

namespace Kiln.Runtime.Chat;

/// <summary>
/// Turns a conversation into the prompt text a chat model was trained on, ending with the generation prompt (the
/// opening of the assistant's turn). The family is recognised from the markers in tokenizer_config.json's
/// <c>chat_template</c> and rendered by hand-written code, so no Jinja engine is needed; anything unrecognised falls
/// back to ChatML. Templates that emit the BOS token themselves say so in <see cref="IncludesBos"/>, so that callers
/// encode the text without adding another.
/// </summary>
public abstract class ChatTemplate
{
    private protected ChatTemplate(ChatTemplateFamily family, bool includesBos)
    {
        Family = family;
        IncludesBos = includesBos;
    }

    public ChatTemplateFamily Family { get; }

    /// <summary>Whether <see cref="Render(IReadOnlyList{ChatMessage})"/> starts with the BOS token (encode without special tokens then).</summary>
    public bool IncludesBos { get; }

    /// <summary>ChatML with no default system prompt: the fallback, and what the demo model uses.</summary>
    public static ChatTemplate ChatMl { get; } = new ChatMlTemplate(defaultSystem: null);

    /// <summary>How the model writes tool calls, as its template teaches it.</summary>
    public virtual ToolCallFormat ToolCalls => Family switch
    {
        ChatTemplateFamily.Llama3 => ToolCallFormat.Llama3Json,
        ChatTemplateFamily.Mistral => ToolCallFormat.Mistral,
        _ => ToolCallFormat.Hermes,
    };

    /// <summary>Renders the conversation and appends the generation prompt.</summary>
    public abstract string Render(IReadOnlyList<ChatMessage> messages);

    /// <summary>
    /// Renders a whole prompt. The hand-written families know no tools and no template variables: a prompt with tools
    /// is refused (an <see cref="ArgumentException"/>, a 400 at the API) rather than rendered without them.
    /// </summary>
    public virtual string Render(ChatPrompt prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Tools.Count > 0)
        {
            throw new ChatTemplateException($"the {Family} chat template Kiln falls back on does not support tools", "tools");
        }

        if (prompt.Messages.Any(m => m.ToolCalls.Count > 0 || m.NormalizedRole == ChatMessage.Tool))
        {
            throw new ChatTemplateException($"the {Family} chat template Kiln falls back on does not support tool calls or tool messages");
        }

        return Render(prompt.Messages);
    }

    /// <summary>
    /// Reads tokenizer_config.json (a file, or a model directory holding one) and picks the family of its
    /// <c>chat_template</c>; a missing file, a missing template or an unreadable file gives ChatML.
    /// </summary>
    public static ChatTemplate Detect(string? tokenizerConfigJsonPath)
    {
        string? path = tokenizerConfigJsonPath;
        if (path is not null && Directory.Exists(path))
        {
            path = Path.Combine(path, "tokenizer_config.json");
        }

        if (path is null || !File.Exists(path))
        {
            return ChatMl;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return ChatMl;
            }

            return FromTemplate(TemplateText(root), TokenText(root, "bos_token"), TokenText(root, "eos_token"));
        }
        catch (JsonException)
        {
            return ChatMl;
        }
    }

    /// <summary>Picks the family of a Jinja chat template string by its markers (null or unknown: ChatML).</summary>
    public static ChatTemplate FromTemplate(string? template, string? bosToken = null, string? eosToken = null)
    {
        if (string.IsNullOrEmpty(template))
        {
            return ChatMl;
        }

        if (template.Contains("<|start_header_id|>", StringComparison.Ordinal))
        {
            return new Llama3Template(bosToken ?? "<|begin_of_text|>");
        }

        if (template.Contains("[INST]", StringComparison.Ordinal))
        {
            // Llama 2's template wraps the system prompt in <<SYS>>; Mistral's has no system block.
            return template.Contains("<<SYS>>", StringComparison.Ordinal)
                ? new Llama2Template(bosToken ?? "<s>", eosToken ?? "</s>")
                : new MistralTemplate(bosToken ?? "<s>", eosToken ?? "</s>");
        }

        // Qwen2's template inserts this system prompt when the conversation has none.
        const string QwenDefault = "You are a helpful assistant.";
        return template.Contains("<|im_start|>", StringComparison.Ordinal) && template.Contains(QwenDefault, StringComparison.Ordinal)
            ? new ChatMlTemplate(QwenDefault)
            : ChatMl;
    }

    /// <summary>The template text: a string, or (newer configs) an array of {name, template} where "default" wins.</summary>
    private static string? TemplateText(JsonElement root)
    {
        if (!root.TryGetProperty("chat_template", out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return value.GetString();
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        string? first = null;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("template", out var t) && t.ValueKind == JsonValueKind.String)
            {
                first ??= t.GetString();
                if (item.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default")
                {
                    return t.GetString();
                }
            }
        }

        return first;
    }

    /// <summary>bos_token / eos_token: a string, or an AddedToken object with "content".</summary>
    private static string? TokenText(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
    }

    private protected static void RequireMessages(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw new ArgumentException("messages must contain at least one message", nameof(messages));
        }
    }

    private protected static string UnsupportedRole(ChatMessage message, ChatTemplateFamily family) =>
        $"role '{message.Role}' is not supported by the {family} chat template (use system, user or assistant)";
}
