using System.Globalization;
using System.Text.Json;
using Kiln.Access;

namespace Kiln.Gateway;

/// <summary>
/// An answer the gateway gives itself, in OpenAI's error shape <c>{"error":{"message","type","param","code"}}</c>
/// (as functions/Kiln.Functions/OpenAi/OpenAiException.cs writes it), so SDK clients read it as the app's own.
/// </summary>
public sealed record GatewayError(int StatusCode, string Message, string Type, string Code, int? RetryAfterSeconds = null)
{
    /// <summary>The WWW-Authenticate header of a 401, or null for none.</summary>
    public string? Challenge { get; init; }

    /// <summary>A missing or wrong key: the app's own 401 (Kiln.Access), so a client sees one answer wherever it was refused.</summary>
    public static GatewayError InvalidApiKey() =>
        new(StatusCodes.Status401Unauthorized, ApiKeyRejection.Message, ApiKeyRejection.Type, ApiKeyRejection.Code) { Challenge = ApiKeyRejection.Challenge };

    public static GatewayError QueueFull(int max) =>
        new(StatusCodes.Status503ServiceUnavailable, $"No model server is ready and the gateway already holds {max} calls; retry shortly.", "server_error", "gateway_queue_full", 5);

    public static GatewayError HoldTimeout(int seconds) =>
        new(StatusCodes.Status503ServiceUnavailable, $"No model server became ready within {seconds} s; retry shortly.", "server_error", "no_ready_server", 30);

    public static GatewayError Unavailable(string message) =>
        new(StatusCodes.Status503ServiceUnavailable, message, "server_error", "upstream_unavailable", 5);

    public static GatewayError TooLarge(long max) =>
        new(StatusCodes.Status413PayloadTooLarge, $"The request body is larger than {max} bytes.", "invalid_request_error", "request_too_large");

    public static GatewayError BadRequest(string message) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", "invalid_request");

    public static GatewayError BadGateway(string message) =>
        new(StatusCodes.Status502BadGateway, message, "server_error", "upstream_error");

    /// <summary>Writes status, Retry-After and body, unless the response has started (then nothing can be said).</summary>
    public async Task WriteAsync(HttpResponse response, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.HasStarted)
        {
            return;
        }

        response.Clear();
        response.StatusCode = StatusCode;
        response.ContentType = "application/json";
        if (RetryAfterSeconds is { } retry)
        {
            response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
        }

        if (Challenge is { } challenge)
        {
            response.Headers.WWWAuthenticate = challenge;
        }

        await using (var w = new Utf8JsonWriter(response.BodyWriter))
        {
            w.WriteStartObject();
            w.WriteStartObject("error");
            w.WriteString("message", Message);
            w.WriteString("type", Type);
            w.WriteNull("param");
            w.WriteString("code", Code);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(ct).ConfigureAwait(false);
    }
}
