using System.Text.Json;
using Kiln.Access;
using Microsoft.AspNetCore.Http;

namespace Kiln.Functions.OpenAi;

/// <summary>
/// An error to answer with OpenAI's body <c>{"error":{"message","type","param","code"}}</c> and an HTTP status.
/// Thrown anywhere in the protocol layer and written once by the handler, so validation code stays linear.
/// </summary>
public sealed class OpenAiException : Exception
{
    /// <summary>The code of the 503 a draining (stopping) server answers new calls with.</summary>
    public const string DrainingCode = "draining";

    /// <summary>
    /// A draining pod's Retry-After: the gateway stops routing to it as soon as its stats say draining, so a retry a
    /// second later reaches another replica.
    /// </summary>
    public const int DrainingRetryAfterSeconds = 1;
    public OpenAiException()
        : this(500, "internal error", "server_error", null, null)
    {
    }

    public OpenAiException(string message)
        : this(400, message, "invalid_request_error", null, null)
    {
    }

    public OpenAiException(string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = 400;
        Type = "invalid_request_error";
    }

    public OpenAiException(int statusCode, string message, string type, string? param, string? code)
        : base(message)
    {
        StatusCode = statusCode;
        Type = type;
        Param = param;
        Code = code;
    }

    public int StatusCode { get; }

    /// <summary>OpenAI's error type: invalid_request_error, rate_limit_error, server_error.</summary>
    public string Type { get; }

    /// <summary>The request field at fault (OpenAI's name), or null.</summary>
    public string? Param { get; }

    /// <summary>A machine-readable code such as model_not_found or context_length_exceeded, or null.</summary>
    public string? Code { get; }

    /// <summary>Seconds for the Retry-After header, or null for none.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>The WWW-Authenticate header of a 401, or null for none.</summary>
    public string? Challenge { get; init; }

    public static OpenAiException BadRequest(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    public static OpenAiException ModelNotFound(string model) =>
        new(StatusCodes.Status404NotFound, $"The model `{model}` does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found");

    public static OpenAiException Overloaded(string message) =>
        new(StatusCodes.Status429TooManyRequests, message, "rate_limit_error", null, "engine_overloaded");

    public static OpenAiException Loading(string model) =>
        new(StatusCodes.Status503ServiceUnavailable, $"The model `{model}` is still loading; retry shortly.", "server_error", null, "model_loading");

    public static OpenAiException Unavailable(string message) =>
        new(StatusCodes.Status503ServiceUnavailable, message, "server_error", null, "model_unavailable");

    /// <summary>The server is stopping (scale-down): the call was not started and can be retried elsewhere.</summary>
    public static OpenAiException Draining() =>
        new(StatusCodes.Status503ServiceUnavailable, "This server is shutting down and takes no new requests; retry shortly.", "server_error", null, DrainingCode)
        {
            RetryAfterSeconds = DrainingRetryAfterSeconds,
        };

    /// <summary>A missing or wrong API key (the body is shared with the gateway's: Kiln.Access).</summary>
    public static OpenAiException InvalidApiKey() =>
        new(StatusCodes.Status401Unauthorized, ApiKeyRejection.Message, ApiKeyRejection.Type, null, ApiKeyRejection.Code) { Challenge = ApiKeyRejection.Challenge };

    /// <summary>A valid key that may not do this (a metrics key calling the API).</summary>
    public static OpenAiException Forbidden() =>
        new(StatusCodes.Status403Forbidden, ApiKeyRejection.ForbiddenMessage, ApiKeyRejection.Type, null, ApiKeyRejection.ForbiddenCode);

    /// <summary>The error body as OpenAI writes it.</summary>
    public void WriteBody(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteString("message", Message);
        writer.WriteString("type", Type);
        WriteNullable(writer, "param", Param);
        WriteNullable(writer, "code", Code);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>Writes the status and body, unless the response has already started (then nothing can be said).</summary>
    public async Task WriteAsync(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.HasStarted)
        {
            return;
        }

        response.StatusCode = StatusCode;
        response.ContentType = "application/json";
        if (RetryAfterSeconds is int seconds)
        {
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (Challenge is { } challenge)
        {
            response.Headers.WWWAuthenticate = challenge;
        }

        await using (var writer = new Utf8JsonWriter(response.BodyWriter, OpenAiJson.WriterOptions))
        {
            WriteBody(writer);
        }

        await response.BodyWriter.FlushAsync().ConfigureAwait(false);
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
