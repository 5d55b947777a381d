using System.Text;

namespace Kiln.Runtime.Chat;

/// <summary>
/// ChatML: <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> per message, then
/// <c>&lt;|im_start|&gt;assistant\n</c>. Any role name is rendered as given. Qwen2 adds a default system prompt.
/// </summary>
internal sealed class ChatMlTemplate(string? defaultSystem) : ChatTemplate(ChatTemplateFamily.ChatMl, includesBos: false)
{
    public override string Render(IReadOnlyList<ChatMessage> messages)
    {
        RequireMessages(messages);
        var text = new StringBuilder();
        if (defaultSystem is not null && messages[0].NormalizedRole != ChatMessage.System)
        {
            Append(text, ChatMessage.System, defaultSystem);
        }

        foreach (var message in messages)
        {
            Append(text, message.NormalizedRole, message.Text);
        }

        return text.Append("<|im_start|>assistant\n").ToString();
    }

    private static void Append(StringBuilder text, string role, string content) =>
        text.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
}

/// <summary>
/// Llama 3 (Meta's format): BOS, then per message <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content,
/// trimmed}&lt;|eot_id|&gt;</c>, then the assistant header.
/// </summary>
internal sealed class Llama3Template(string bos) : ChatTemplate(ChatTemplateFamily.Llama3, includesBos: true)
{
    public override string Render(IReadOnlyList<ChatMessage> messages)
    {
        RequireMessages(messages);
        var text = new StringBuilder(bos);
        foreach (var message in messages)
        {
            string role = message.NormalizedRole;
            if (role is not (ChatMessage.System or ChatMessage.User or ChatMessage.Assistant or "ipython" or "tool"))
            {
                throw new ArgumentException(UnsupportedRole(message, Family), nameof(messages));
            }

            Header(text, role).Append(message.Text.Trim()).Append("<|eot_id|>");
        }

        return Header(text, ChatMessage.Assistant).ToString();
    }

    private static StringBuilder Header(StringBuilder text, string role) =>
        text.Append("<|start_header_id|>").Append(role).Append("<|end_header_id|>\n\n");
}

/// <summary>
/// Llama 2 chat (Meta's format, as in its Hugging Face template): each user turn is <c>&lt;s&gt;[INST] {user} [/INST]</c>,
/// each answer <c> {assistant} &lt;/s&gt;</c>, and a system prompt opens the first user turn as
/// <c>&lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n</c>. The open [/INST] is the generation prompt.
/// </summary>
internal sealed class Llama2Template(string bos, string eos) : ChatTemplate(ChatTemplateFamily.Llama2, includesBos: true)
{
    public override string Render(IReadOnlyList<ChatMessage> messages)
    {
        RequireMessages(messages);
        var (system, turns) = InstTurns.SplitSystem(messages, Family);
        var text = new StringBuilder();
        for (int i = 0; i < turns.Count; i++)
        {
            var message = turns[i];
            if (message.NormalizedRole == ChatMessage.User)
            {
                string content = i == 0 && system is not null
                    ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{message.Text}"
                    : message.Text;
                text.Append(bos).Append("[INST] ").Append(content.Trim()).Append(" [/INST]");
            }
            else
            {
                text.Append(' ').Append(message.Text.Trim()).Append(' ').Append(eos);
            }
        }

        return text.ToString();
    }
}

/// <summary>
/// Mistral instruct (v0.1/v0.2 format): <c>&lt;s&gt;</c> once, then <c>[INST] {user} [/INST]{assistant}&lt;/s&gt;</c>
/// per exchange. It has no system role; a system prompt is prepended to the first user message with a blank line,
/// as Mistral's later templates do.
/// </summary>
internal sealed class MistralTemplate(string bos, string eos) : ChatTemplate(ChatTemplateFamily.Mistral, includesBos: true)
{
    public override string Render(IReadOnlyList<ChatMessage> messages)
    {
        RequireMessages(messages);
        var (system, turns) = InstTurns.SplitSystem(messages, Family);
        var text = new StringBuilder(bos);
        for (int i = 0; i < turns.Count; i++)
        {
            var message = turns[i];
            if (message.NormalizedRole == ChatMessage.User)
            {
                string content = i == 0 && system is not null ? $"{system}\n\n{message.Text}" : message.Text;
                text.Append("[INST] ").Append(content).Append(" [/INST]");
            }
            else
            {
                text.Append(message.Text).Append(eos);
            }
        }

        return text.ToString();
    }
}

/// <summary>The [INST] formats' shared rule: an optional leading system message, then user/assistant alternating from user.</summary>
internal static class InstTurns
{
    public static (string? System, IReadOnlyList<ChatMessage> Turns) SplitSystem(IReadOnlyList<ChatMessage> messages, ChatTemplateFamily family)
    {
        string? system = null;
        int start = 0;
        if (messages[0].NormalizedRole == ChatMessage.System)
        {
            system = messages[0].Text;
            start = 1;
        }

        var turns = new List<ChatMessage>(messages.Count - start);
        for (int i = start; i < messages.Count; i++)
        {
            var message = messages[i];
            string expected = (i - start) % 2 == 0 ? ChatMessage.User : ChatMessage.Assistant;
            if (message.NormalizedRole is not (ChatMessage.User or ChatMessage.Assistant))
            {
                throw new ArgumentException($"role '{message.Role}' is not supported by the {family} chat template (only a first system message, then user and assistant)", nameof(messages));
            }

            if (message.NormalizedRole != expected)
            {
                throw new ArgumentException($"the {family} chat template needs user and assistant messages to alternate, starting with user", nameof(messages));
            }

            turns.Add(message);
        }

        if (turns.Count == 0 || turns[^1].NormalizedRole != ChatMessage.User)
        {
            throw new ArgumentException($"the {family} chat template needs the conversation to end with a user message", nameof(messages));
        }

        return (system, turns);
    }
}
