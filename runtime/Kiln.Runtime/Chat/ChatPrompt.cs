using System.Text.Json;

namespace Kiln.Runtime.Chat;

/// <summary>
/// Everything a chat template is given: the conversation, the tools the model is shown (none unless the request
/// offered some and did not choose "none"), whether to open the assistant's turn, and extra variables for the
/// model's template (vLLM's <c>chat_template_kwargs</c>, e.g. <c>enable_thinking</c>).
/// </summary>
public sealed record ChatPrompt(IReadOnlyList<ChatMessage> Messages)
{
    public IReadOnlyList<ToolDefinition> Tools { get; init; } = [];

    public bool AddGenerationPrompt { get; init; } = true;

    /// <summary>A JSON object whose members become template variables (they cannot replace messages or tools).</summary>
    public JsonElement? TemplateArguments { get; init; }
}
