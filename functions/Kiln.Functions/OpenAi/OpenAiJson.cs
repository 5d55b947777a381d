using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kiln.Functions.OpenAi;

/// <summary>How the app writes JSON: relaxed escaping, as OpenAI does (these bodies never land inside HTML), so
/// backticks and non-ASCII token text go out as themselves instead of \u escapes.</summary>
public static class OpenAiJson
{
    public static JsonWriterOptions WriterOptions { get; } = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
