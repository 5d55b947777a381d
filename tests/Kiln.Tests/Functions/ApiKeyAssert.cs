using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Kiln.Tests.Functions;

/// <summary>The refusal of a missing or wrong key, as the app and the gateway both answer it.</summary>
public static class ApiKeyAssert
{
    /// <summary>401, WWW-Authenticate: Bearer and OpenAI's body, exactly its four fields.</summary>
    public static async Task InvalidApiKeyAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        using (response)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", Assert.Single(response.Headers.WwwAuthenticate).Scheme);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
            var error = body.GetProperty("error");
            Assert.StartsWith("Incorrect API key provided", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            Assert.Equal(["message", "type", "param", "code"], error.EnumerateObject().Select(p => p.Name));
        }
    }
}
