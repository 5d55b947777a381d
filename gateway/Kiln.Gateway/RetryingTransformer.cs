using System.Net;
using Yarp.ReverseProxy.Forwarder;

namespace Kiln.Gateway;

/// <summary>
/// The forwarder's transformer: headers copied as usual, except that a 503 from the pod (model loading, or draining
/// after SIGTERM) is not passed on. Nothing of it reaches the client, so the call can go to another pod.
/// </summary>
public sealed class RetryingTransformer : HttpTransformer
{
    public static readonly RetryingTransformer Instance = new();

    private static readonly object TurnedAwayKey = new();

    /// <summary>True when the last attempt's pod answered 503 and the answer was withheld; clears the mark.</summary>
    public static bool TakeTurnedAway(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items.Remove(TurnedAwayKey);
    }

    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (proxyResponse?.StatusCode == HttpStatusCode.ServiceUnavailable)
        {
            httpContext.Items[TurnedAwayKey] = true;
            return ValueTask.FromResult(false);
        }

        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }
}
