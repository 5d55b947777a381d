using System.Text.Json;
using System.Text.RegularExpressions;
using Kiln.Runtime.Chat;

namespace Kiln.Functions.OpenAi;

/// <summary>
/// Parses <c>tools</c>, <c>tool_choice</c> and <c>parallel_tool_calls</c> with OpenAI's rules: function tools only,
/// names of 1 to 64 letters, digits, underscores and dashes, distinct; a named choice must name an offered tool;
/// <c>required</c> needs tools. The deprecated <c>functions</c>/<c>function_call</c> are refused by name.
/// </summary>
internal static partial class ToolRequests
{
    /// <summary>OpenAI's bound on how many tools one request may offer.</summary>
    public const int MaxTools = 128;

    public static ToolOptions Parse(JsonFields fields)
    {
        foreach (string deprecated in (string[])["functions", "function_call"])
        {
            if (fields.TryGet(deprecated, out _))
            {
                throw JsonFields.Unsupported(deprecated, "it is deprecated; use 'tools' and 'tool_choice'");
            }
        }

        var tools = fields.TryGet("tools", out var value) ? Tools(value) : [];
        bool parallel = fields.Bool("parallel_tool_calls") ?? true;
        if (!fields.TryGet("tool_choice", out var choice))
        {
            return new ToolOptions(tools, tools.Count > 0 ? ToolChoiceMode.Auto : ToolChoiceMode.None, null, parallel);
        }

        if (choice.ValueKind == JsonValueKind.String)
        {
            var mode = JsonFields.Text(choice, "tool_choice") switch
            {
                "auto" => ToolChoiceMode.Auto,
                "none" => ToolChoiceMode.None,
                "required" => ToolChoiceMode.Required,
                string other => throw OpenAiException.BadRequest(
                    $"Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "invalid_value"),
            };
            if (mode == ToolChoiceMode.Required && tools.Count == 0)
            {
                throw OpenAiException.BadRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "invalid_value");
            }

            return new ToolOptions(tools, tools.Count > 0 ? mode : ToolChoiceMode.None, null, parallel);
        }

        if (choice.ValueKind != JsonValueKind.Object)
        {
            throw JsonFields.WrongType("tool_choice", "a string or an object", choice);
        }

        var named = JsonFields.Of(choice);
        if (named.String("type", required: true) != "function")
        {
            throw OpenAiException.BadRequest("Invalid value for 'tool_choice.type': only 'function' is supported.", "tool_choice.type", "invalid_value");
        }

        var function = named.Required("function");
        string name = JsonFields.Of(function.ValueKind == JsonValueKind.Object ? function : throw JsonFields.WrongType("tool_choice.function", "an object", function))
            .String("name", required: true)!;
        if (!tools.Any(t => t.Name == name))
        {
            throw OpenAiException.BadRequest(
                $"Invalid value for 'tool_choice': the function '{name}' is not one of the request's tools.", "tool_choice.function.name", "invalid_value");
        }

        return new ToolOptions(tools, ToolChoiceMode.Named, name, parallel);
    }

    private static List<ToolDefinition> Tools(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType("tools", "an array", value);
        }

        int count = value.GetArrayLength();
        if (count > MaxTools)
        {
            throw JsonFields.TooLong("tools", MaxTools, count);
        }

        var tools = new List<ToolDefinition>(count);
        int i = 0;
        foreach (var tool in value.EnumerateArray())
        {
            string at = $"tools[{i++}]";
            var fields = JsonFields.Of(tool.ValueKind == JsonValueKind.Object ? tool : throw JsonFields.WrongType(at, "an object", tool));
            string type = fields.String("type", required: true)!;
            if (type != "function")
            {
                throw OpenAiException.BadRequest($"Invalid value: '{type}'. Supported values are: 'function'.", $"{at}.type", "invalid_value");
            }

            var function = fields.Required("function");
            var f = JsonFields.Of(function.ValueKind == JsonValueKind.Object ? function : throw JsonFields.WrongType($"{at}.function", "an object", function));
            string name = f.String("name", required: true)!;
            if (!FunctionName().IsMatch(name))
            {
                throw OpenAiException.BadRequest(
                    $"Invalid '{at}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'.", $"{at}.function.name", "invalid_value");
            }

            if (tools.Any(t => t.Name == name))
            {
                throw OpenAiException.BadRequest($"Invalid 'tools': the function name '{name}' appears more than once.", $"{at}.function.name", "invalid_value");
            }

            var parameters = f.TryGet("parameters", out var p)
                ? p.ValueKind == JsonValueKind.Object ? p.Clone() : throw JsonFields.WrongType($"{at}.function.parameters", "an object", p)
                : EmptyObject;
            tools.Add(new ToolDefinition(name, f.String("description"), parameters, tool.Clone()));
        }

        return tools;
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{\"type\": \"object\", \"properties\": {}}").RootElement.Clone();

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex FunctionName();
}
