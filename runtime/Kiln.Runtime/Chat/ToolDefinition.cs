using System.Text.Json;

namespace Kiln.Runtime.Chat;

/// <summary>
/// A function the caller offers the model (OpenAI's <c>{"type": "function", "function": {...}}</c>): its name, its
/// description, the JSON schema of its arguments, and the tool object as the caller sent it, which is what the model's
/// template is given (transformers and vLLM pass the same).
/// </summary>
public sealed record ToolDefinition(string Name, string? Description, JsonElement Parameters, JsonElement Json);

/// <summary>OpenAI's <c>tool_choice</c>.</summary>
public enum ToolChoiceMode
{
    /// <summary>The model may answer or call a tool (the default when tools are given).</summary>
    Auto,

    /// <summary>No tool call: the tools are not shown to the model and its output is not parsed for calls.</summary>
    None,

    /// <summary>The answer is a call to one of the tools, enforced by a grammar.</summary>
    Required,

    /// <summary>The answer is a call to the one named function, enforced by a grammar.</summary>
    Named,
}

/// <summary>What a chat request says about tools: the offered functions, the choice, and whether calls may be parallel.</summary>
public sealed record ToolOptions(IReadOnlyList<ToolDefinition> Tools, ToolChoiceMode Choice, string? FunctionName, bool ParallelCalls)
{
    public static ToolOptions NoTools { get; } = new([], ToolChoiceMode.None, null, ParallelCalls: true);

    /// <summary>Whether the model is shown tools and its output parsed for calls.</summary>
    public bool Active => Tools.Count > 0 && Choice != ToolChoiceMode.None;

    /// <summary>The functions a forced call may name: the named one, or every tool.</summary>
    public IReadOnlyList<ToolDefinition> Callable => Choice == ToolChoiceMode.Named ? [.. Tools.Where(t => t.Name == FunctionName)] : Tools;
}
