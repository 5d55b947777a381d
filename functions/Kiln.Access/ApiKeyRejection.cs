namespace Kiln.Access;

/// <summary>
/// What a refused call is told, in OpenAI's error shape, the same from the app and from the gateway: 401 with
/// <c>WWW-Authenticate: Bearer</c> for a missing or wrong key (OpenAI's own code, so SDKs report it as an
/// authentication error), 403 for a metrics key on the API. The message never repeats the key.
/// </summary>
public static class ApiKeyRejection
{
    public const string Message = "Incorrect API key provided. Send one of this server's API keys as `Authorization: Bearer <key>`.";
    public const string Type = "invalid_request_error";
    public const string Code = "invalid_api_key";

    /// <summary>The <c>WWW-Authenticate</c> header of a 401 (RFC 6750): the scheme the key goes in.</summary>
    public const string Challenge = "Bearer";

    public const string ForbiddenMessage = "This key may read /api/stats and /api/metrics only; calling the API needs one of the server's API keys.";
    public const string ForbiddenCode = "insufficient_permissions";
}
