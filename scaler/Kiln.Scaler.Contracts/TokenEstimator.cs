using System.Text;
using System.Text.Json;

namespace Kiln.Scaler.Contracts;

/// <summary>
/// Estimates the tokens a queued job will cost without a tokenizer: characters / 4 of the prompt text (messages'
/// contents or the completions prompt) plus the output budget (max_completion_tokens, max_tokens or the default)
/// times n. Cheap enough to run on 32 peeked messages per poll; precise enough for a scaling signal.
/// </summary>
public static class TokenEstimator
{
    public const int CharsPerToken = 4;

    /// <summary>A queue message body: JSON <c>{"id":..,"request":{..}}</c>, raw or base64-encoded (the Functions default).</summary>
    public static double EstimateMessage(ReadOnlySpan<byte> body, int defaultMaxTokens)
    {
        if (TryEstimateJson(body, defaultMaxTokens, out var tokens))
        {
            return tokens;
        }

        var text = Encoding.UTF8.GetString(body).Trim();
        var buffer = new byte[text.Length];
        if (Convert.TryFromBase64String(text, buffer, out var written) && TryEstimateJson(buffer.AsSpan(0, written), defaultMaxTokens, out tokens))
        {
            return tokens;
        }

        // Not a job we understand: still work, priced by its size.
        return Math.Ceiling(body.Length / (double)CharsPerToken) + defaultMaxTokens;
    }

    public static bool TryEstimateJson(ReadOnlySpan<byte> json, int defaultMaxTokens, out double tokens)
    {
        tokens = 0;
        try
        {
            var reader = new Utf8JsonReader(json);
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            var request = doc.RootElement.TryGetProperty("request", out var r) && r.ValueKind == JsonValueKind.Object ? r : doc.RootElement;
            tokens = EstimateRequest(request, defaultMaxTokens);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>A chat-completions or completions request body.</summary>
    public static double EstimateRequest(JsonElement request, int defaultMaxTokens)
    {
        long chars = 0;
        if (request.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Array)
        {
            foreach (var message in messages.EnumerateArray())
            {
                if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("content", out var content))
                {
                    chars += TextLength(content);
                }
            }
        }
        else if (request.TryGetProperty("prompt", out var prompt))
        {
            chars += TextLength(prompt);
        }

        var output = Integer(request, "max_completion_tokens") ?? Integer(request, "max_tokens") ?? defaultMaxTokens;
        var n = Math.Max(1, Integer(request, "n") ?? 1);
        return Math.Ceiling(chars / (double)CharsPerToken) + (double)output * n;
    }

    // content: a string, or an array of parts {"type":"text","text":..}; prompt: a string or an array of strings.
    private static long TextLength(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!.Length,
        JsonValueKind.Array => e.EnumerateArray().Sum(p => p.ValueKind switch
        {
            JsonValueKind.String => p.GetString()!.Length,
            JsonValueKind.Object when p.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String => t.GetString()!.Length,
            _ => 0L,
        }),
        _ => 0,
    };

    private static long? Integer(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var i) && i >= 0 ? i : null;
}
