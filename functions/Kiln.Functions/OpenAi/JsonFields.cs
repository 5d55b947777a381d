using System.Text.Json;

namespace Kiln.Functions.OpenAi;

/// <summary>
/// Typed reads of a request object's fields with OpenAI's error messages: a wrong type or a missing required field
/// becomes a 400 naming the field. JSON null counts as absent, as in OpenAI's API.
/// </summary>
internal readonly struct JsonFields
{
    private readonly JsonElement _root;

    private JsonFields(JsonElement root) => _root = root;

    public static JsonFields Of(JsonElement root) => root.ValueKind == JsonValueKind.Object
        ? new JsonFields(root)
        : throw OpenAiException.BadRequest($"The request body must be a JSON object, not {Kind(root)}.", null, "invalid_type");

    public bool TryGet(string name, out JsonElement value) =>
        _root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public JsonElement Required(string name) => TryGet(name, out var value) ? value : throw Missing(name);

    public string? String(string name, bool required = false)
    {
        if (!TryGet(name, out var value))
        {
            return required ? throw Missing(name) : null;
        }

        return value.ValueKind == JsonValueKind.String ? Text(value, name) : throw WrongType(name, "a string", value);
    }

    /// <summary>
    /// A JSON string's text. Well-formed JSON can still hold text that is not Unicode (invalid UTF-8 bytes, a lone
    /// surrogate escape such as <c>"\ud800"</c>): a client's mistake, answered with a 400 naming the field.
    /// </summary>
    public static string Text(JsonElement value, string name)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw OpenAiException.BadRequest($"Invalid '{name}': the string is not valid Unicode (invalid UTF-8 or a lone surrogate).", name, "invalid_encoding");
        }
    }

    public bool? Bool(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "a boolean", value),
        };
    }

    public double? Number(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw WrongType(name, "a number", value);
    }

    public long? Integer(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long result)
            ? result
            : throw WrongType(name, "an integer", value);
    }

    /// <summary>An integer that must fit an int (larger values are out of range rather than of the wrong type).</summary>
    public int? Int32(string name)
    {
        long? value = Integer(name);
        return value is null ? null
            : value is >= int.MinValue and <= int.MaxValue ? (int)value
            : throw OpenAiException.BadRequest($"Invalid '{name}': {value} is out of range.", name, "integer_out_of_range");
    }

    /// <summary>OpenAI's <c>stop</c>: a string or an array of strings.</summary>
    public string[] Strings(string name)
    {
        if (!TryGet(name, out var value))
        {
            return [];
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return [Text(value, name)];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw WrongType(name, "a string or an array of strings", value);
        }

        var result = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            result.Add(item.ValueKind == JsonValueKind.String ? Text(item, name) : throw WrongType(name, "a string or an array of strings", value));
        }

        return [.. result];
    }

    /// <summary>A number within [min, max], else OpenAI's "decimal below minimum value" / "above maximum value" 400.</summary>
    public double? Number(string name, double min, double max)
    {
        double? value = Number(name);
        return value is null || (value >= min && value <= max) ? value : throw OutOfRange(name, value.Value, min, max, integer: false);
    }

    /// <summary>An integer within [min, max], else OpenAI's "integer below minimum value" / "above maximum value" 400.</summary>
    public int? Int32(string name, int min, int max)
    {
        int? value = Int32(name);
        return value is null || (value >= min && value <= max) ? value : throw OutOfRange(name, value.Value, min, max, integer: true);
    }

    /// <summary>OpenAI's wording and codes for a value past a bound, e.g. <c>integer_above_max_value</c>.</summary>
    public static OpenAiException OutOfRange(string name, double value, double min, double max, bool integer)
    {
        string kind = integer ? "integer" : "decimal";
        string text = value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return value < min
            ? OpenAiException.BadRequest($"Invalid '{name}': {kind} below minimum value. Expected a value >= {Show(min)}, but got {text} instead.", name, $"{kind}_below_min_value")
            : OpenAiException.BadRequest($"Invalid '{name}': {kind} above maximum value. Expected a value <= {Show(max)}, but got {text} instead.", name, $"{kind}_above_max_value");

        static string Show(double bound) => bound.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>OpenAI's 400 for an array longer than allowed (<c>array_above_max_length</c>).</summary>
    public static OpenAiException TooLong(string name, int max, int length) =>
        OpenAiException.BadRequest(
            $"Invalid '{name}': array too long. Expected an array with maximum length {max}, but got an array with length {length} instead.", name, "array_above_max_length");

    /// <summary>A field Kiln does not implement: refused by name rather than silently ignored.</summary>
    public static OpenAiException Unsupported(string name, string why) =>
        OpenAiException.BadRequest($"Unsupported parameter: '{name}' is not supported by this server: {why}.", name, "unsupported_parameter");

    public static OpenAiException Missing(string name) =>
        OpenAiException.BadRequest($"Missing required parameter: '{name}'.", name, "missing_required_parameter");

    public static OpenAiException WrongType(string name, string expected, JsonElement value) =>
        OpenAiException.BadRequest($"Invalid type for '{name}': expected {expected}, but got {Kind(value)} instead.", name, "invalid_type");

    public static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
