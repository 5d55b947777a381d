using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Gateway;

/// <summary>The scaler's report endpoint as a loopback recorder: every PUT's path and JSON body, in order.</summary>
public sealed class FakeScaler : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeScaler(WebApplication app, Uri address)
    {
        _app = app;
        BaseUrl = address;
    }

    public Uri BaseUrl { get; }
    public ConcurrentQueue<(string Path, JsonObject Body)> Puts { get; } = new();

    public static async Task<FakeScaler> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Kiln.Scaler.EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeScaler? self = null;
        app.MapPut("/v1/gateways/{ns}/{scaledObject}/{gatewayId}", async (HttpContext c) =>
        {
            var body = (JsonObject)(await JsonNode.ParseAsync(c.Request.Body))!;
            self!.Puts.Enqueue((c.Request.Path.Value!, body));
            return Results.Ok();
        });
        await app.StartAsync();
        self = new FakeScaler(app, new Uri(app.Urls.First()));
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
