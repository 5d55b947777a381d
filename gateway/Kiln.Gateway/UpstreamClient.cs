using System.Net;

namespace Kiln.Gateway;

/// <summary>
/// The connection pool to the pods, shared by every call. A short connect timeout: a pod that does not accept
/// within it is treated like one that refused, and the call goes elsewhere.
/// </summary>
public sealed class UpstreamClient : IDisposable
{
    public HttpMessageInvoker Invoker { get; } = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        ActivityHeadersPropagator = null,
    });

    public void Dispose() => Invoker.Dispose();
}
