using System.Text.Json;
using Kiln.Functions.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Kiln.Functions.Api;

/// <summary>Writes a whole JSON answer straight into the response's pipe.</summary>
internal static class ApiJson
{
    public static async Task WriteAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using (var writer = new Utf8JsonWriter(context.Response.BodyWriter, OpenAiJson.WriterOptions))
        {
            write(writer);
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
