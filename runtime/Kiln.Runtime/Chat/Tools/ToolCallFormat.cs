using System.Text;
using System.Text.Json;

namespace Kiln.Runtime.Chat.Tools;

/// <summary>How a model family writes its tool calls, as its own template teaches it.</summary>
public enum ToolCallSyntax
{
    /// <summary>Hermes, Qwen2.5, Qwen3: <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>, one block per call.</summary>
    Hermes,

    /// <summary>Llama 3.1 and later: the whole answer is <c>{"name": ..., "parameters": {...}}</c>, optionally after <c>&lt;|python_tag|&gt;</c>.</summary>
    Llama3Json,

    /// <summary>Mistral: <c>[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]</c>.</summary>
    Mistral,
}

/// <summary>
/// A family's tool-call syntax: recognised from the markers in its template, the JSON key its arguments go under, and
/// the text around a forced call (tool_choice required or named), so that the grammar writes exactly what the parser
/// reads back.
/// </summary>
public sealed class ToolCallFormat
{
    public static ToolCallFormat Hermes { get; } = new(ToolCallSyntax.Hermes, "arguments", "<tool_call>\n", "\n</tool_call>");

    public static ToolCallFormat Llama3Json { get; } = new(ToolCallSyntax.Llama3Json, "parameters", string.Empty, string.Empty);

    public static ToolCallFormat Mistral { get; } = new(ToolCallSyntax.Mistral, "arguments", "[TOOL_CALLS][", "]");

    private ToolCallFormat(ToolCallSyntax syntax, string argumentsKey, string forcedPrefix, string forcedSuffix)
    {
        Syntax = syntax;
        ArgumentsKey = argumentsKey;
        ForcedPrefix = forcedPrefix;
        ForcedSuffix = forcedSuffix;
    }

    public ToolCallSyntax Syntax { get; }

    /// <summary>Where a call's arguments go: "arguments" (Hermes, Mistral) or "parameters" (Llama 3.1).</summary>
    public string ArgumentsKey { get; }

    /// <summary>The text before a forced call's JSON.</summary>
    public string ForcedPrefix { get; }

    /// <summary>The text after a forced call's JSON.</summary>
    public string ForcedSuffix { get; }

    /// <summary>
    /// The syntax a template teaches, by its markers; Hermes (Qwen's) where none is recognised, since it is the most
    /// widely trained and what the ChatML fallback shows the model.
    /// </summary>
    public static ToolCallFormat Detect(string? templateSource)
    {
        if (templateSource is null)
        {
            return Hermes;
        }

        if (templateSource.Contains("[TOOL_CALLS]", StringComparison.Ordinal))
        {
            return Mistral;
        }

        if (templateSource.Contains("<tool_call>", StringComparison.Ordinal))
        {
            return Hermes;
        }

        return templateSource.Contains("<|start_header_id|>", StringComparison.Ordinal) ? Llama3Json : Hermes;
    }

    /// <summary>
    /// The JSON schema of one call to any of <paramref name="tools"/>: <c>{"name": const, ArgumentsKey: parameters}</c>,
    /// one branch per tool, the name first so a reader of the stream learns it before the arguments.
    /// </summary>
    public JsonElement CallSchema(IReadOnlyList<ToolDefinition> tools)
    {
        ArgumentNullException.ThrowIfNull(tools);
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("anyOf");
            foreach (var tool in tools)
            {
                w.WriteStartObject();
                w.WriteString("type", "object");
                w.WriteStartObject("properties");
                w.WriteStartObject("name");
                w.WriteString("const", tool.Name);
                w.WriteEndObject();
                w.WritePropertyName(ArgumentsKey);
                tool.Parameters.WriteTo(w);
                w.WriteEndObject();
                w.WriteStartArray("required");
                w.WriteStringValue("name");
                w.WriteStringValue(ArgumentsKey);
                w.WriteEndArray();
                w.WriteBoolean("additionalProperties", false);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.ToArray());
        return document.RootElement.Clone();
    }

    /// <summary>The markers a streamed answer is watched for, in the order they are looked for.</summary>
    internal string OpenMarker => Syntax switch
    {
        ToolCallSyntax.Hermes => "<tool_call>",
        ToolCallSyntax.Mistral => "[TOOL_CALLS]",
        _ => "<|python_tag|>",
    };

    internal string? CloseMarker => Syntax == ToolCallSyntax.Hermes ? "</tool_call>" : null;

    /// <summary>Writes one call as this family's template renders an assistant's call (for tests and the fallback template).</summary>
    public string Render(string name, string argumentsJson)
    {
        var text = new StringBuilder(ForcedPrefix);
        text.Append("{\"name\": ").Append(JsonSerializer.Serialize(name)).Append(", \"").Append(ArgumentsKey).Append("\": ").Append(argumentsJson).Append('}');
        return text.Append(ForcedSuffix).ToString();
    }
}
