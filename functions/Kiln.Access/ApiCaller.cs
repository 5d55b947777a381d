using System.Net;

namespace Kiln.Access;

/// <summary>
/// Who made a call, without the key: <c>key-</c> and the first 8 hex digits of the key's SHA-256 for a key holder
/// (the same id for the same key after every restart, and unchanged when other keys are added or removed), or
/// <c>anon:</c> and the client's address where no key is configured. Stored on the request as a feature
/// (<c>context.Features.Get&lt;ApiCaller&gt;()</c>) for what runs after the check.
/// </summary>
public sealed record ApiCaller(string Id)
{
    /// <summary>A caller on a server without keys, told apart by address (IPv4-mapped IPv6 written as IPv4).</summary>
    public static ApiCaller Anonymous(IPAddress? remote) =>
        new($"anon:{(remote is { IsIPv4MappedToIPv6: true } ? remote.MapToIPv4() : remote)?.ToString() ?? "unknown"}");
}
