using System.Text.Json;

namespace Kiln.Functions.OpenAi;

/// <summary>What <c>response_format</c> asks for: plain text, any JSON object, or JSON matching a schema.</summary>
public enum ResponseFormatKind
{
    Text,
    JsonObject,
    JsonSchema,
}

/// <summary>A parsed <c>response_format</c>; <see cref="Schema"/> is set for <see cref="ResponseFormatKind.JsonSchema"/>.</summary>
public sealed record ResponseFormat(ResponseFormatKind Kind, JsonElement? Schema = null, string? Name = null)
{
    public static ResponseFormat Text { get; } = new(ResponseFormatKind.Text);

    /// <summary>
    /// <c>{"type": "text"}</c>, <c>{"type": "json_object"}</c> or <c>{"type": "json_schema", "json_schema": {"name",
    /// "schema", "strict", "description"}}</c> as OpenAI defines them (a missing schema means any JSON value, as there).
    /// </summary>
    internal static ResponseFormat Parse(JsonFields fields)
    {
        if (!fields.TryGet("response_format", out var value))
        {
            return Text;
        }

        var format = JsonFields.Of(value.ValueKind == JsonValueKind.Object ? value : throw JsonFields.WrongType("response_format", "an object", value));
        string type = format.String("type", required: true)!;
        switch (type)
        {
            case "text":
                return Text;
            case "json_object":
                return new ResponseFormat(ResponseFormatKind.JsonObject);
            case "json_schema":
                var spec = format.TryGet("json_schema", out var spec0) ? spec0 : throw JsonFields.Missing("response_format.json_schema");
                var s = JsonFields.Of(spec.ValueKind == JsonValueKind.Object ? spec : throw JsonFields.WrongType("response_format.json_schema", "an object", spec));
                string name = s.String("name", required: true)!;
                _ = s.Bool("strict"); // a type check only: Kiln always enforces the schema (strict or not)
                var schema = s.TryGet("schema", out var given)
                    ? given.ValueKind is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False
                        ? given.Clone()
                        : throw JsonFields.WrongType("response_format.json_schema.schema", "an object", given)
                    : AnyValue;
                return new ResponseFormat(ResponseFormatKind.JsonSchema, schema, name);
            default:
                throw OpenAiException.BadRequest(
                    $"Invalid value: '{type}'. Supported values are: 'text', 'json_object', and 'json_schema'.", "response_format.type", "invalid_value");
        }
    }

    private static readonly JsonElement AnyValue = JsonDocument.Parse("{}").RootElement.Clone();
}
