using System.Text;
using System.Text.Json;
using Kiln.Runtime.Chat;

namespace Kiln.Functions.OpenAi;

/// <summary>
/// Parses <c>messages</c>: roles OpenAI defines, text content (a string or text parts; images, audio and files are
/// refused by name), assistant turns carrying <c>tool_calls</c> (content may then be null) and tool turns with the
/// <c>tool_call_id</c> they answer.
/// </summary>
internal static class ChatMessageParser
{
    public static List<ChatMessage> ParseAll(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType("messages", "an array", messages);
        }

        var parsed = new List<ChatMessage>();
        int i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            parsed.Add(Parse(message, i++));
        }

        return parsed.Count > 0
            ? parsed
            : throw OpenAiException.BadRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array");
    }

    private static ChatMessage Parse(JsonElement message, int index)
    {
        string param = $"messages[{index}]";
        if (message.ValueKind != JsonValueKind.Object)
        {
            throw JsonFields.WrongType(param, "an object", message);
        }

        var fields = JsonFields.Of(message);
        string role = fields.TryGet("role", out var r)
            ? r.ValueKind == JsonValueKind.String ? JsonFields.Text(r, $"{param}.role") : throw JsonFields.WrongType($"{param}.role", "a string", r)
            : throw JsonFields.Missing($"{param}.role");
        if (role is not (ChatMessage.System or ChatMessage.Developer or ChatMessage.User or ChatMessage.Assistant or ChatMessage.Tool))
        {
            throw OpenAiException.BadRequest(
                $"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.", $"{param}.role", "invalid_value");
        }

        foreach (string refused in (string[])["audio", "function_call"])
        {
            if (fields.TryGet(refused, out _))
            {
                throw JsonFields.Unsupported($"{param}.{refused}", refused == "audio" ? "Kiln serves text models" : "use 'tool_calls'");
            }
        }

        var calls = role == ChatMessage.Assistant ? ToolCalls(fields, param) : [];
        string? toolCallId = role == ChatMessage.Tool ? fields.String("tool_call_id") ?? throw JsonFields.Missing($"{param}.tool_call_id") : null;
        string? name = fields.String("name");
        if (!fields.TryGet("content", out var content))
        {
            // Only an assistant turn may leave its content out (it then calls tools, or says nothing).
            return role == ChatMessage.Assistant
                ? new ChatMessage(role, null) { ToolCalls = calls, Name = name }
                : throw JsonFields.Missing($"{param}.content");
        }

        return new ChatMessage(role, ContentText(content, $"{param}.content")) { ToolCalls = calls, ToolCallId = toolCallId, Name = name };
    }

    /// <summary>An assistant turn's <c>tool_calls</c>: <c>[{id, type: "function", function: {name, arguments}}]</c>.</summary>
    private static List<ToolCall> ToolCalls(JsonFields fields, string param)
    {
        if (!fields.TryGet("tool_calls", out var value))
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType($"{param}.tool_calls", "an array", value);
        }

        var calls = new List<ToolCall>();
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            string at = $"{param}.tool_calls[{i++}]";
            var call = JsonFields.Of(item.ValueKind == JsonValueKind.Object ? item : throw JsonFields.WrongType(at, "an object", item));
            string type = call.String("type") ?? "function";
            if (type != "function")
            {
                throw OpenAiException.BadRequest($"Invalid value: '{type}'. Supported values are: 'function'.", $"{at}.type", "invalid_value");
            }

            var function = call.Required("function");
            var f = JsonFields.Of(function.ValueKind == JsonValueKind.Object ? function : throw JsonFields.WrongType($"{at}.function", "an object", function));
            calls.Add(new ToolCall(call.String("id", required: true)!, f.String("name", required: true)!, f.String("arguments") ?? "{}"));
        }

        return calls;
    }

    /// <summary>A message's content: a string, or an array of parts of which only text parts are supported.</summary>
    private static string ContentText(JsonElement content, string param)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return JsonFields.Text(content, param);
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.WrongType(param, "a string or an array of content parts", content);
        }

        var text = new StringBuilder();
        int i = 0;
        foreach (var part in content.EnumerateArray())
        {
            string at = $"{param}[{i++}]";
            var fields = JsonFields.Of(part.ValueKind == JsonValueKind.Object ? part : throw JsonFields.WrongType(at, "an object", part));
            string? type = fields.String("type");
            if (type is "image_url" or "input_audio" or "file")
            {
                throw OpenAiException.BadRequest(
                    $"Invalid content part type '{type}' in '{at}': this server serves a text model, so only 'text' parts are supported.", $"{at}.type", "unsupported_content");
            }

            if (type is not ("text" or "refusal"))
            {
                throw OpenAiException.BadRequest($"Invalid value: '{type}'. Supported values are: 'text'.", $"{at}.type", "invalid_value");
            }

            text.Append(fields.String(type, required: true));
        }

        return text.ToString();
    }
}
