namespace Kiln.Runtime.Chat;

/// <summary>One turn of a conversation: a role (system, user, assistant; "developer" counts as system) and its text.</summary>
public sealed record ChatMessage(string Role, string Content)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";

    /// <summary>OpenAI's newer name for the system role; templates render it as system.</summary>
    public const string Developer = "developer";

    /// <summary>The role as the templates know it (developer folded into system).</summary>
    public string NormalizedRole => Role == Developer ? System : Role;
}

/// <summary>The prompt formats Kiln can render without a Jinja engine.</summary>
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
}
