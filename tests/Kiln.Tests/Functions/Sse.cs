using System.Text.Json;

namespace Kiln.Tests.Functions;

/// <summary>Reads an OpenAI server-sent-event stream by hand: every <c>data:</c> payload until <c>[DONE]</c>.</summary>
public static class Sse
{
    public static async Task<(List<JsonElement> Chunks, bool SawDone)> ReadAllAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var chunks = new List<JsonElement>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
        while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                Assert.Equal(string.Empty, line); // events are separated by blank lines, nothing else
                continue;
            }

            string data = line["data: ".Length..];
            if (data == "[DONE]")
            {
                return (chunks, true);
            }

            chunks.Add(JsonDocument.Parse(data).RootElement.Clone());
        }

        return (chunks, false);
    }
}
