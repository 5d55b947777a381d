using System.Net;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace Kiln.Gateway;

/// <summary>
/// The app's routes (/api/...): buffer the body, pick a pod, forward with path and query unchanged and the response
/// streamed back as it comes. With no routable pod the call is held until one is (bounded in count and time); a pod
/// that refuses the connection or answers 503 before anything reached the client is set aside and the call routed
/// again. The client's RequestAborted cancels the upstream call, wherever it is. The client's key is checked first
/// (<see cref="GatewayAccess"/>) and forwarded unchanged in its Authorization header.
/// </summary>
public sealed partial class ForwardingMiddleware(
    RequestDelegate next,
    IHttpForwarder forwarder,
    UpstreamClient upstream,
    Router router,
    PodDirectory directory,
    HeldRequests held,
    GatewayAccess access,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<ForwardingMiddleware> log)
{
    /// <summary>A bound on attempts per call, should pods keep turning it away within the hold time.</summary>
    public const int MaxAttempts = 16;

    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        // Generous: a long prefill may precede the first byte, and a stream may pause; the client's disconnect is the real bound.
        ActivityTimeout = TimeSpan.FromMinutes(10),
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
    };

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var ct = context.RequestAborted;
        if (!access.AdmitsApi(context))
        {
            await GatewayError.InvalidApiKey().WriteAsync(context.Response, ct).ConfigureAwait(false); // before the body is read or the call held
            return;
        }

        try
        {
            await ForwardAsync(context, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away: nothing to answer, and the upstream call was cancelled with it.
        }
        catch (BadHttpRequestException e)
        {
            await GatewayError.BadRequest(e.Message).WriteAsync(context.Response, ct).ConfigureAwait(false);
        }
        catch (IOException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task ForwardAsync(HttpContext context, CancellationToken ct)
    {
        var o = options.Value;
        var request = await BufferedRequest.ReadAsync(context.Request, o, ct).ConfigureAwait(false);
        if (request is null)
        {
            await GatewayError.TooLarge(o.MaxRequestBodyBytes).WriteAsync(context.Response, ct).ConfigureAwait(false);
            return;
        }

        DateTimeOffset? deadline = null;
        HeldRequests.Lease? lease = null;
        try
        {
            for (var attempt = 0; ;)
            {
                var changed = directory.Changed;
                var choice = router.Choose(request.Blocks);
                if (choice is not null)
                {
                    lease?.Dispose();
                    lease = null;
                    if (await TryOnceAsync(context, request, choice.Pod, ct).ConfigureAwait(false))
                    {
                        return;
                    }

                    if (++attempt >= MaxAttempts)
                    {
                        await GatewayError.Unavailable($"Model servers turned the call away {attempt} times.").WriteAsync(context.Response, ct).ConfigureAwait(false);
                        return;
                    }

                    continue;
                }

                // No routable pod: hold. A call a pod sent back keeps its first deadline and is not refused by the bound.
                // The deadline is fixed before the call shows as held, so a clock read later can only shorten the wait.
                var returned = deadline is not null;
                deadline ??= time.GetUtcNow().AddSeconds(o.MaxHoldSeconds);
                if (lease is null)
                {
                    lease = held.TryHold(request.EstimatedTokens, returned);
                    if (lease is null)
                    {
                        await GatewayError.QueueFull(held.MaxHeld).WriteAsync(context.Response, ct).ConfigureAwait(false);
                        return;
                    }
                }

                var remaining = deadline.Value - time.GetUtcNow();
                try
                {
                    if (remaining <= TimeSpan.Zero)
                    {
                        throw new TimeoutException();
                    }

                    // Taken before Choose: a pod that became ready in between has completed it already.
                    await changed.WaitAsync(remaining, time, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    await GatewayError.HoldTimeout(o.MaxHoldSeconds).WriteAsync(context.Response, ct).ConfigureAwait(false);
                    return;
                }
            }
        }
        finally
        {
            lease?.Dispose();
        }
    }

    /// <summary>One attempt on one pod; false when the pod turned the call away before any byte reached the client.</summary>
    private async Task<bool> TryOnceAsync(HttpContext context, BufferedRequest request, Pod pod, CancellationToken ct)
    {
        request.Rewind(context.Request);
        pod.Load.Started(request.EstimatedTokens);
        ForwarderError error;
        try
        {
            error = await forwarder.SendAsync(context, pod.Prefix, upstream.Invoker, RequestConfig, RetryingTransformer.Instance, ct).ConfigureAwait(false);
        }
        finally
        {
            pod.Load.Finished();
        }

        var turnedAway = RetryingTransformer.TakeTurnedAway(context);
        var refused = error is ForwarderError.Request or ForwarderError.RequestTimedOut && !ct.IsCancellationRequested;
        if ((turnedAway || refused) && !context.Response.HasStarted)
        {
            LogTurnedAway(log, pod.Name, turnedAway ? "answered 503" : "could not be reached");
            pod.Suspend();
            context.Response.Clear();
            return false;
        }

        if (error is not ForwarderError.None && !ct.IsCancellationRequested && !context.Response.HasStarted)
        {
            await GatewayError.BadGateway($"The model server failed the call ({error}).").WriteAsync(context.Response, ct).ConfigureAwait(false);
        }

        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pod {Pod} {What}; routing the call again")]
    private static partial void LogTurnedAway(ILogger logger, string pod, string what);
}
