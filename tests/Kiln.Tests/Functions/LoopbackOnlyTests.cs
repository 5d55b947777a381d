using System.Net;
using Kiln.Functions.Hosting;
using Kiln.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Functions;

/// <summary>
/// Without a key the app serves loopback only: beyond it the start fails naming the setting, unless
/// <c>Kiln:AllowAnonymous</c> says otherwise; under the Functions host (where the worker cannot see the address) a key
/// or AllowAnonymous is required.
/// </summary>
public sealed class LoopbackOnlyTests
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(90);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("http://localhost:7071", true)]
    [InlineData("https://LOCALHOST:5001/", true)]
    [InlineData("http://127.0.0.1:0", true)]
    [InlineData("http://127.0.0.5:80", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("http://unix:/run/kiln.sock", true)]
    [InlineData("http://+:80", false)]
    [InlineData("http://*:80", false)]
    [InlineData("http://0.0.0.0:80", false)]
    [InlineData("http://[::]:80", false)]
    [InlineData("http://10.1.2.3:80", false)]
    [InlineData("http://kiln.example.com:80", false)]
    [InlineData("http://localhost.example.com:80", false)]
    public void WhatCountsAsLoopback(string url, bool loopback) => Assert.Equal(loopback, LoopbackUrls.IsLoopback(url));

    [Fact]
    public async Task BeyondLoopbackWithoutAKey_FailsTheStart_NamingTheSettings()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await KilnServer.StartAsync(null, ["urls=http://127.0.0.1:0;http://0.0.0.0:0"]));

        Assert.Contains("Kiln:ApiKeys", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kiln__ApiKeys", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kiln:AllowAnonymous=true", error.Message, StringComparison.Ordinal);
        Assert.Contains("http://0.0.0.0:0", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnEndpointBoundInCode_IsCheckedOnceBound()
    {
        // Kestrel's own Listen() overrides --urls: only the bound addresses can tell.
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await KilnServer.StartAsync(null, configure: b => b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.IPv6Any, 0))));
        Assert.Contains("Kiln:ApiKeys", error.Message, StringComparison.Ordinal);
        Assert.Contains("[::]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AllowAnonymous_StartsBeyondLoopback_AndWarns()
    {
        using var logs = new CapturedLogs();
        await using var server = await KilnServer.StartAsync(null, ["urls=http://0.0.0.0:0", "Kiln:AllowAnonymous=true"], b => logs.AddTo(b.Logging));

        Assert.Equal("0.0.0.0", server.Root.Host);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.Root.Port}/api/") };
        using var stats = await http.GetAsync(new Uri("stats", UriKind.Relative), Ct); // open: no key of either kind is set
        Assert.Equal(HttpStatusCode.OK, stats.StatusCode);
        Assert.Contains(logs.AtLeast(LogLevel.Warning), e => e.Category == typeof(AccessGuard).FullName && e.Message.Contains("Kiln:AllowAnonymous=true", StringComparison.Ordinal));
    }

    [Fact]
    public async Task OnLoopbackWithoutAKey_ItStarts_AndSaysItServesLoopbackOnly()
    {
        using var logs = new CapturedLogs();
        await using var server = await KilnServer.StartAsync(null, configure: b => logs.AddTo(b.Logging));

        using var models = await server.Http.GetAsync(new Uri("v1/models", UriKind.Relative), Ct);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        var line = Assert.Single(logs.Entries, e => e.Category == typeof(AccessGuard).FullName);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Contains("serving loopback only (http://127.0.0.1:0)", line.Message, StringComparison.Ordinal);
        Assert.Contains("Kiln:ApiKeys", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheProcess_BeyondLoopbackWithoutAKey_ExitsNonZero_WithTheMessage()
    {
        var (code, output) = await AppProcess.RunToExitAsync(["--urls=http://0.0.0.0:0"], ExitTimeout, Ct);

        Assert.Equal(2, code);
        Assert.Contains("kiln: error: No API key is set (Kiln:ApiKeys", output, StringComparison.Ordinal);
        Assert.Contains("Kiln:AllowAnonymous=true", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnderTheFunctionsHost_WithoutAKeyOrAllowAnonymous_TheWorkerExitsNonZero()
    {
        // As the host starts it; the check comes before the worker dials the host, so no host needs to listen.
        var (code, output) = await AppProcess.RunToExitAsync(
            ["--functions-uri", "http://127.0.0.1:1/", "--functions-worker-id", "w", "--functions-request-id", "r", "--functions-grpc-max-message-length", "2147483647"],
            ExitTimeout,
            Ct);

        Assert.True(code == 2, $"exit code {code}:\n{output}");
        Assert.Contains("Functions host", output, StringComparison.Ordinal);
        Assert.Contains("Kiln:ApiKeys", output, StringComparison.Ordinal);
        Assert.Contains("Kiln:AllowAnonymous=true", output, StringComparison.Ordinal);
    }
}
