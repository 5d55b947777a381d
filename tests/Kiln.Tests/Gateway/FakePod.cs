using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Gateway;

/// <summary>
/// A stand-in app pod on loopback for what the real app cannot be made to do on cue (answer 503 while draining,
/// pause a stream until told, report a given backlog): /api/ready, /api/stats with a settable state and backlog, and
/// every other /api route answered by <see cref="Handler"/>. Records each call's path and whether it was aborted.
/// </summary>
public sealed class FakePod : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _disposed;

    private FakePod(WebApplication app, Uri baseUrl, string name)
    {
        _app = app;
        BaseUrl = baseUrl;
        Name = name;
    }

    public Uri BaseUrl { get; }
    public string Name { get; }
    public string State { get; set; } = "ready";
    public long Backlog { get; set; }
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>The Authorization header of each app-route call, in order ("" for none).</summary>
    public ConcurrentQueue<string> CallAuthorizations { get; } = new();

    /// <summary>The Authorization header of each /api/stats read, in order ("" for none).</summary>
    public ConcurrentQueue<string> StatsAuthorizations { get; } = new();

    /// <summary>Completes when a call's RequestAborted fires (the gateway cancelled it upstream).</summary>
    public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Answers the app routes; by default 200 with <c>{"pod":NAME}</c>.</summary>
    public Func<HttpContext, Task>? Handler { get; set; }

    public static async Task<FakePod> StartAsync(string name, IPAddress? ip = null, int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Kiln.Scaler.EmbeddedLifetime>();
        builder.WebHost.UseKestrel(k => k.Listen(ip ?? IPAddress.Loopback, port));
        var app = builder.Build();
        FakePod? self = null;
        app.MapGet("/api/ready", (HttpContext c) => Results.StatusCode(self!.State == "ready" ? 200 : 503));
        app.MapGet("/api/stats", (HttpContext c) =>
        {
            self!.StatsAuthorizations.Enqueue(c.Request.Headers.Authorization.ToString());
            return Results.Json(new { state = self.State, tokenBacklog = self.Backlog, waitingRequests = 0 });
        });
        app.Map("/api/{**rest}", async (HttpContext c) =>
        {
            self!.Calls.Enqueue(c.Request.Path + c.Request.QueryString);
            self.CallAuthorizations.Enqueue(c.Request.Headers.Authorization.ToString());
            using var registration = c.RequestAborted.Register(() => self.Aborted.TrySetResult());
            if (self.Handler is { } handler)
            {
                await handler(c);
            }
            else
            {
                await c.Response.WriteAsJsonAsync(new { pod = self.Name });
            }
        });
        await app.StartAsync();
        self = new FakePod(app, new Uri(app.Urls.First()), name);
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
