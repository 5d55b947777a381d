using System.Net;
using System.Text;
using System.Text.Json;
using Kiln.Gateway;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static Kiln.Tests.Gateway.GatewayTestKit;

namespace Kiln.Tests.Gateway;

/// <summary>The gateway's reports to the scaler, against a loopback endpoint that records the PUTs.</summary>
public sealed class ScalerReportTests
{
    [Fact]
    public async Task TheFirstHeldCall_IsReportedAtOnceWithItsEstimate_ThenEachInterval_ThenZero()
    {
        await using var scaler = await FakeScaler.StartAsync();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await GatewayHost.StartAsync(
            new GatewayOptions { StaticPods = NoPod, ScalerUrl = scaler.BaseUrl.ToString(), Namespace = "kiln", ScaledObjectName = "kiln-llama", ReportIntervalMs = 1000 },
            clock,
            s => s.AddSingleton(new GatewayIdentity("kiln", "gw-test")),
            Ct);
        using var http = Client(gateway);
        Assert.Empty(scaler.Puts); // nothing held, nothing reported

        // 400 characters of content (100 tokens at 4 a token) + max_tokens 50 = 150 tokens.
        var body = JsonSerializer.Serialize(new { model = "m", messages = new[] { new { role = "user", content = new string('a', 400) } }, max_tokens = 50 });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var call = http.PostAsync("api/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), stop.Token);

        // The clock has not moved: this report can only be the immediate one.
        await UntilAsync(() => Task.FromResult(!scaler.Puts.IsEmpty), "the first report");
        var (path, report) = scaler.Puts.First();
        Assert.Equal("/v1/gateways/kiln/kiln-llama/gw-test", path);
        Assert.Equal(1, (int)report["heldRequests"]!);
        Assert.Equal(150, (double)report["heldTokens"]!);

        // The reporter may not be waiting on the clock yet when the first PUT lands: advance until the interval fires.
        await UntilAsync(() =>
        {
            if (scaler.Puts.Count < 2)
            {
                clock.Advance(TimeSpan.FromMilliseconds(1000));
            }

            return Task.FromResult(scaler.Puts.Count >= 2);
        }, "the interval's report");
        Assert.Equal(150, (double)scaler.Puts.ElementAt(1).Body["heldTokens"]!);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await UntilAsync(() => Task.FromResult(scaler.Puts.Any(p => (int)p.Body["heldRequests"]! == 0)), "the report of zero");
        var last = scaler.Puts.Last().Body;
        Assert.Equal(0, (int)last["heldRequests"]!);
        Assert.Equal(0, (double)last["heldTokens"]!);
    }

    [Fact]
    public async Task AnUnreachableScaler_NeverFailsOrDelaysACall()
    {
        await using var pod = await FakePod.StartAsync("a");
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = pod.BaseUrl.ToString(), ScalerUrl = NoPod, DiscoveryIntervalMs = 600_000 }, cancellationToken: Ct);
        using var http = Client(gateway);

        // Sent before the pod is known to be ready, so it is held and reported (to nowhere) first.
        using var response = await http.PostAsync("api/v1/chat/completions", Chat("s", "u"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
