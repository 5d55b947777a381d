using System.Text.Json;

namespace Kiln.Tokenization;

/// <summary>Small typed accessors for tokenizer JSON that report problems with the file name.</summary>
internal static class JsonReading
{
    public static InvalidDataException Malformed(string source, string message, Exception? inner = null) =>
        new($"{source}: {message}", inner);

    public static JsonElement? Property(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value)
            && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    public static string? String(JsonElement element, string name, string source)
    {
        var value = Property(element, name);
        return value switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v => v.GetString(),
            _ => throw Malformed(source, $"'{name}' must be a string."),
        };
    }

    public static bool? Bool(JsonElement element, string name, string source)
    {
        var value = Property(element, name);
        return value switch
        {
            null => null,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            _ => throw Malformed(source, $"'{name}' must be true or false."),
        };
    }

    public static int? Int(JsonElement element, string name, string source)
    {
        var value = Property(element, name);
        return value switch
        {
            null => null,
            { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out var i) => i,
            _ => throw Malformed(source, $"'{name}' must be an integer."),
        };
    }

    public static IEnumerable<JsonElement> Array(JsonElement element, string name, string source)
    {
        var value = Property(element, name);
        return value switch
        {
            null => [],
            { ValueKind: JsonValueKind.Array } v => v.EnumerateArray(),
            _ => throw Malformed(source, $"'{name}' must be an array."),
        };
    }

    /// <summary>A HF pattern object: {"String": "..."} (literal) or {"Regex": "..."}.</summary>
    public static (string Text, bool IsRegex) Pattern(JsonElement element, string source)
    {
        var pattern = Property(element, "pattern") ?? throw Malformed(source, "pattern missing.");
        if (String(pattern, "Regex", source) is { } regex)
        {
            return (regex, true);
        }

        return String(pattern, "String", source) is { } text
            ? (text, false)
            : throw Malformed(source, "pattern must have 'String' or 'Regex'.");
    }

    /// <summary>tokenizer_config tokens are a string or an AddedToken object {"content": ...}.</summary>
    public static string? TokenContent(JsonElement element, string name, string source)
    {
        var value = Property(element, name);
        return value switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v => v.GetString(),
            { ValueKind: JsonValueKind.Object } v => String(v, "content", source),
            _ => throw Malformed(source, $"'{name}' must be a string or an object with 'content'."),
        };
    }
}
