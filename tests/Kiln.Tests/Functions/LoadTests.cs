using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Functions;

/// <summary>
/// 200 concurrent streaming clients against the standalone app on loopback: every request completes or is refused
/// with 429 at once, none hangs, and memory stays bounded. Bounded in count and time; not a timing test.
/// </summary>
public sealed class LoadTests(ITestOutputHelper output)
{
    private const int Clients = 200;

    [Fact]
    public async Task TwoHundredStreamingClients_EachCompletesOrGets429_NoneHangs_MemoryBounded()
    {
        var ct = TestContext.Current.CancellationToken;
        using var file = new TempGguf(KilnServerFixture.ModelOptions);
        await using var server = await KilnServer.StartAsync(file.Path, ["Kiln:MaxSequences=16", "Kiln:MaxWaitingRequests=48", "Kiln:MaxBatchedTokens=128"]);
        await server.WaitUntilLoadedAsync();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Clients }) { BaseAddress = server.Http.BaseAddress, Timeout = TimeSpan.FromSeconds(90) };

        GC.Collect();
        GC.WaitForPendingFinalizers();
        long heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        long peakWorkingSet = Environment.WorkingSet;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peakWorkingSet = Math.Max(peakWorkingSet, Environment.WorkingSet);
                await Task.Delay(50, CancellationToken.None);
            }
        }, CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, Clients).Select(i => StreamOneAsync(http, i, ct)));
        clock.Stop();
        await sampling.CancelAsync();
        await sampler;

        int completed = outcomes.Count(o => o == HttpStatusCode.OK);
        int refused = outcomes.Count(o => o == HttpStatusCode.TooManyRequests);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long heapAfter = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"{Clients} clients in {clock.Elapsed.TotalSeconds:F1} s: {completed} completed, {refused} refused with 429; " +
            $"managed heap {heapBefore / 1e6:F1} -> {heapAfter / 1e6:F1} MB, peak working set {peakWorkingSet / 1e6:F0} MB");

        Assert.Equal(Clients, completed + refused); // nothing else: no 5xx, no hang (each client is bounded by its timeout)
        Assert.True(completed >= 16, $"only {completed} requests completed");
        Assert.True(refused > 0, "200 simultaneous clients against 16 running + 48 waiting should see 429s");
        Assert.True(heapAfter - heapBefore < 64_000_000, $"the managed heap grew by {(heapAfter - heapBefore) / 1e6:F1} MB after the load");
        Assert.Equal(0, await server.MetricAsync("kiln_kv_blocks_used"));
    }

    [Fact]
    public async Task ThreeHundredStreams_TheBurstHostJsonIsSizedFor_AllComplete()
    {
        // host.json takes 320 concurrent calls: 64 running plus 256 waiting. A burst of 300 must be admitted whole,
        // though prefill starts only a few of them a step (they all wait at first).
        var ct = TestContext.Current.CancellationToken;
        const int Streams = 300;
        using var file = new TempGguf(KilnServerFixture.ModelOptions);
        await using var server = await KilnServer.StartAsync(file.Path, ["Kiln:MaxSequences=64", "Kiln:MaxWaitingRequests=256"]);
        await server.WaitUntilLoadedAsync();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Streams }) { BaseAddress = server.Http.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };

        var clock = Stopwatch.StartNew();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, Streams).Select(i => StreamOneAsync(http, i, ct)));
        output.WriteLine($"{Streams} streams in {clock.Elapsed.TotalSeconds:F1} s: " + string.Join(", ", outcomes.GroupBy(o => o).Select(g => $"{g.Count()} {(int)g.Key}")));

        Assert.All(outcomes, o => Assert.Equal(HttpStatusCode.OK, o));
    }

    /// <summary>One client: a streamed chat completion read to [DONE], or the 429 it got instead.</summary>
    private static async Task<HttpStatusCode> StreamOneAsync(HttpClient http, int index, CancellationToken ct)
    {
        var body = new
        {
            model = KilnServerFixture.ModelId,
            messages = new[] { new { role = "user", content = $"client {index} says hello" } },
            max_tokens = 12,
            stream = true,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return response.StatusCode;
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line == "data: [DONE]")
            {
                return HttpStatusCode.OK;
            }
        }

        return HttpStatusCode.PartialContent; // the stream ended without [DONE]: counts as a failure
    }
}
