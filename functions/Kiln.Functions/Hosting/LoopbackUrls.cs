using System.Net;

namespace Kiln.Functions.Hosting;

/// <summary>
/// Whether a listening URL as Kestrel takes it (<c>--urls</c>, <c>ASPNETCORE_URLS</c>, a bound address) stays on this
/// machine: <c>localhost</c>, a loopback IP, or a Unix socket or named pipe. Everything else reaches beyond it: the
/// wildcards <c>+</c>, <c>*</c>, <c>0.0.0.0</c> and <c>[::]</c>, another IP, and any other host name (Kestrel binds
/// every interface for one).
/// </summary>
public static class LoopbackUrls
{
    public static bool IsLoopback(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var rest = url.AsSpan().Trim();
        int scheme = rest.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            rest = rest[(scheme + 3)..];
        }

        if (rest.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) || rest.StartsWith("pipe:", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        int slash = rest.IndexOf('/');
        if (slash >= 0)
        {
            rest = rest[..slash];
        }

        ReadOnlySpan<char> host;
        if (rest.StartsWith("["))
        {
            int close = rest.IndexOf(']');
            host = close > 0 ? rest[1..close] : rest;
        }
        else
        {
            int colon = rest.LastIndexOf(':');
            host = colon >= 0 ? rest[..colon] : rest;
        }

        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>The URLs of a semicolon-separated list (as <c>urls</c> holds them) that reach beyond loopback.</summary>
    public static IReadOnlyList<string> Beyond(IEnumerable<string?> urls) =>
        [.. urls.SelectMany(u => (u ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Where(u => !IsLoopback(u))];
}
