using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Kiln.Gateway;
using Microsoft.Extensions.Time.Testing;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>
/// Prefix affinity between two stand-in pods with equal engine load. The clock is fake and never advanced, so the
/// pods' stats are read once and the only load the router sees is what the gateway itself forwarded.
/// </summary>
public sealed class AffinityTests
{
    private static readonly string PromptX = new('x', 1024); // 4 blocks of 256 characters
    private static readonly string PromptY = new('y', 1024);

    [Fact]
    public async Task ASharedLongSystemPrompt_StaysOnOnePod_AndAnotherPrefixGoesToTheLessLoadedPod()
    {
        await using var a = await FakePod.StartAsync("a");
        await using var b = await FakePod.StartAsync("b");
        await using var gateway = await StartAsync(a, b, affinityMax: 32768);
        using var http = Client(gateway);

        var x1 = await PodOfAsync(http, PromptX, "first question");
        var x2 = await PodOfAsync(http, PromptX, "another question");
        var y1 = await PodOfAsync(http, PromptY, "first question");
        var y2 = await PodOfAsync(http, PromptY, "another question");
        var x3 = await PodOfAsync(http, PromptX, "a third question");

        Assert.Equal(x1, x2);
        Assert.Equal(x1, x3);
        Assert.Equal(y1, y2);
        Assert.NotEqual(x1, y1); // the X pod carries two calls' estimates: Y goes to the other
        var pods = (await StatsAsync(http))["pods"]!.AsArray();
        Assert.Equal(3, pods.Sum(p => (int)p!["affinityHits"]!));
        Assert.Equal(2, pods.Sum(p => (int)p!["affinityMisses"]!));
    }

    [Fact]
    public async Task APodOverTheAffinityBound_NoLongerAttractsItsPrefix()
    {
        await using var a = await FakePod.StartAsync("a");
        await using var b = await FakePod.StartAsync("b");
        // Each call is estimated at 1024/4 + 16 = 272 tokens, over the bound of 100 and over the 256 the cache saves.
        await using var gateway = await StartAsync(a, b, affinityMax: 100);
        using var http = Client(gateway);

        var x1 = await PodOfAsync(http, PromptX, "q");
        var x2 = await PodOfAsync(http, PromptX, "q");

        Assert.NotEqual(x1, x2);
    }

    [Fact]
    public async Task AShortHeadEveryCallShares_DoesNotPullAllCallsToOnePod()
    {
        await using var a = await FakePod.StartAsync("a");
        await using var b = await FakePod.StartAsync("b");
        await using var gateway = await StartAsync(a, b, affinityMax: 32768);
        using var http = Client(gateway);
        var head = new string('h', 248); // with "<system>" exactly the first of four blocks

        var pods = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            pods.Add(await PodOfAsync(http, head, new string((char)('a' + i), 800)));
        }

        Assert.Equal(2, pods.Count(p => p == "a"));
        Assert.Equal(2, pods.Count(p => p == "b"));
    }

    [Fact]
    public async Task RoundRobin_IgnoresPrefixes()
    {
        await using var a = await FakePod.StartAsync("a");
        await using var b = await FakePod.StartAsync("b");
        await using var gateway = await StartAsync(a, b, affinityMax: 32768, balancing: "round-robin");
        using var http = Client(gateway);

        var x1 = await PodOfAsync(http, PromptX, "q1");
        var x2 = await PodOfAsync(http, PromptX, "q2");

        Assert.NotEqual(x1, x2);
    }

    [Fact]
    public async Task APrefixHeldByTwoPods_GoesToTheLessLoadedOfThem_NotAlwaysToTheLastOne()
    {
        await using var a = await FakePod.StartAsync("a");
        await using var b = await FakePod.StartAsync("b");
        var clock = new FakeTimeProvider();
        await using var gateway = await StartAsync(a, b, affinityMax: 32768, clock: clock);
        using var http = Client(gateway);
        var shared = new string('s', 512); // two shared blocks; each call's tail makes the rest its own
        string Tail(int i) => new((char)('a' + i), 512);

        var first = await PodOfAsync(http, shared, Tail(1));
        var away = first == "a" ? a : b;
        away.State = "loading";
        clock.Advance(TimeSpan.FromMilliseconds(500)); // the next stats read
        await UntilPodsReadyAsync(http, 1); // the other is loading
        var second = await PodOfAsync(http, shared, Tail(2));
        Assert.NotEqual(first, second); // now both pods hold the shared prefix
        away.State = "ready";
        clock.Advance(TimeSpan.FromMilliseconds(500));
        await UntilPodsReadyAsync(http, 2);

        var next = new List<string>();
        for (var i = 3; i <= 6; i++)
        {
            next.Add(await PodOfAsync(http, shared, Tail(i)));
        }

        // Load decides between the two holders: two calls each, not all four to the one that took the prefix last.
        Assert.Equal(2, next.Count(p => p == "a"));
        Assert.Equal(2, next.Count(p => p == "b"));
    }

    private static async Task<RunningGateway> StartAsync(FakePod a, FakePod b, long affinityMax, string balancing = "prefix-affinity", FakeTimeProvider? clock = null)
    {
        var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            StaticPods = $"{a.BaseUrl},{b.BaseUrl}",
            Balancing = balancing,
            PrefixBlockChars = 256,
            AffinityMaxBacklogTokens = affinityMax,
        }, clock ?? new FakeTimeProvider(), cancellationToken: Ct);
        using var http = Client(gateway);
        await UntilPodsReadyAsync(http, 2);
        return gateway;
    }

    private static async Task<string> PodOfAsync(HttpClient http, string system, string user)
    {
        using var response = await http.PostAsync("api/v1/chat/completions", Chat(system, user, maxTokens: 16), Ct);
        response.EnsureSuccessStatusCode();
        return (string)(await response.Content.ReadFromJsonAsync<JsonNode>(Ct))!["pod"]!;
    }
}
