namespace Kiln.Runtime.Chat;

/// <summary>
/// One turn of a conversation: a role (system, user, assistant, tool; "developer" counts as system) and its text, with
/// what agents add: the calls an assistant turn made (<see cref="ToolCalls"/>), and on a tool turn the call it answers
/// (<see cref="ToolCallId"/>). <see cref="Content"/> is null only where the caller sent none (an assistant turn that
/// only calls tools), which templates tell apart from an empty string.
/// </summary>
public sealed record ChatMessage(string Role, string? Content)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";
    public const string Tool = "tool";

    /// <summary>OpenAI's newer name for the system role; templates render it as system.</summary>
    public const string Developer = "developer";

    /// <summary>The calls an assistant turn made, in order; empty for every other turn.</summary>
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];

    /// <summary>On a tool turn, the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>The participant's or tool's name, when the caller gave one.</summary>
    public string? Name { get; init; }

    /// <summary>The role as the templates know it (developer folded into system).</summary>
    public string NormalizedRole => Role == Developer ? System : Role;

    /// <summary>The text, empty where there is none.</summary>
    public string Text => Content ?? string.Empty;
}

/// <summary>
/// A function call as OpenAI's API carries it: an id the tool's answer refers to, the function's name and its
/// arguments as JSON text (a string, exactly as the model wrote them or the caller sent them).
/// </summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>The prompt formats Kiln can render without the model's own template.</summary>
public enum ChatTemplateFamily
{
    /// <summary><c>&lt;|im_start|&gt;role\n...&lt;|im_end|&gt;</c>: Qwen2 and many others; the fallback.</summary>
    ChatMl,

    /// <summary><c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n...&lt;|eot_id|&gt;</c>.</summary>
    Llama3,

    /// <summary><c>[INST] &lt;&lt;SYS&gt;&gt;...&lt;&lt;/SYS&gt;&gt; ... [/INST]</c>.</summary>
    Llama2,

    /// <summary><c>[INST] ... [/INST]</c> without a system block.</summary>
    Mistral,

    /// <summary>The model's own Jinja template, rendered by Kiln.Templates.</summary>
    Jinja,
}
