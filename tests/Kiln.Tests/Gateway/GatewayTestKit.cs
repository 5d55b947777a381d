using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Gateway;

namespace Kiln.Tests.Gateway;

/// <summary>Shared pieces of the gateway tests: a closed port, stats reads, condition waits, request bodies.</summary>
public static class GatewayTestKit
{
    /// <summary>A static pod nothing listens on: never ready, so every call is held.</summary>
    public const string NoPod = "http://127.0.0.1:1";

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static HttpClient Client(RunningGateway gateway) => new() { BaseAddress = gateway.Address, Timeout = TimeSpan.FromMinutes(2) };

    public static async Task<JsonObject> StatsAsync(HttpClient client) =>
        (JsonObject)(await client.GetFromJsonAsync<JsonNode>("gateway/stats", Ct))!;

    /// <summary>Polls a condition until it holds; fails the test after the timeout. A wait on a condition, not a sleep.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting until {what}");
            }

            await Task.Delay(20, Ct);
        }
    }

    public static Task UntilHeldAsync(HttpClient client, int count) =>
        UntilAsync(async () => (int)(await StatsAsync(client))["heldRequests"]! == count, $"the gateway holds {count} calls");

    public static async Task<int> ReadyPodsAsync(HttpClient client) =>
        (await StatsAsync(client))["pods"]!.AsArray().Count(p => (bool)p!["ready"]!);

    public static Task UntilPodsReadyAsync(HttpClient client, int count) =>
        UntilAsync(async () => await ReadyPodsAsync(client) == count, $"{count} pods are ready");

    public static StringContent Chat(string system, string user, int maxTokens = 8, bool stream = false) =>
        new(JsonSerializer.Serialize(new
        {
            model = "m",
            messages = new[] { new { role = "system", content = system }, new { role = "user", content = user } },
            max_tokens = maxTokens,
            stream,
        }), Encoding.UTF8, "application/json");

    public static async Task<JsonObject> ErrorAsync(HttpResponseMessage response) =>
        (JsonObject)(await response.Content.ReadFromJsonAsync<JsonNode>(Ct))!["error"]!;
}
