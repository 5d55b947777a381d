using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Configuration;

namespace Kiln.Access;

/// <summary>
/// The bearer keys a server accepts, any of them (several at once, so that one can be rotated without downtime). A
/// setting holds them as a comma-separated string (<c>Kiln__ApiKeys="k1,k2"</c>, handy from a Kubernetes Secret) or
/// as a configuration array (<c>Kiln:ApiKeys:0</c>, <c>Kiln:ApiKeys:1</c>), or both; entries are trimmed and empty
/// ones dropped, so a key can hold neither a comma nor surrounding spaces. Only the keys' SHA-256 digests are kept:
/// a presented key is hashed and compared with every digest by <see cref="CryptographicOperations.FixedTimeEquals"/>,
/// so the time a check takes tells neither a key's length nor how much of a prefix matched.
/// </summary>
public sealed class ApiKeySet
{
    private const string BearerScheme = "Bearer";
    private readonly byte[][] _digests;
    private readonly ApiCaller[] _callers;

    private ApiKeySet(IEnumerable<string> keys)
    {
        _digests = [.. keys.Select(Digest).DistinctBy(Convert.ToHexString)];
        _callers = [.. _digests.Select(d => new ApiCaller("key-" + Convert.ToHexStringLower(d.AsSpan(0, 4))))];
    }

    public static ApiKeySet Empty { get; } = new([]);

    public int Count => _digests.Length;

    public bool IsEmpty => _digests.Length == 0;

    /// <summary>The callers the keys stand for, in the order configured (for logs: ids, never keys).</summary>
    public IReadOnlyList<ApiCaller> Callers => _callers;

    /// <summary>The keys of setting <paramref name="key"/> (such as <c>Kiln:ApiKeys</c>) in either form.</summary>
    public static ApiKeySet FromConfiguration(IConfiguration configuration, string key) => From(ReadKeys(configuration, key));

    /// <summary>Every entry split at commas, trimmed, empty ones dropped.</summary>
    public static ApiKeySet From(IEnumerable<string?> entries) => new(Split(entries));

    /// <summary>The plain keys of a setting in either form, for a client that must send one (the gateway's stats reads).</summary>
    public static IReadOnlyList<string> ReadKeys(IConfiguration configuration, string key)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(key);
        return Split([section.Value, .. section.GetChildren().Select(c => c.Value)]);
    }

    public static IReadOnlyList<string> Split(IEnumerable<string?> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        return [.. entries.SelectMany(e => (e ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Whether an <c>Authorization</c> header value is <c>Bearer</c> (any case) and one of the keys; the caller is
    /// that key's id.
    /// </summary>
    public bool TryMatch(string? authorizationHeader, [NotNullWhen(true)] out ApiCaller? caller)
    {
        caller = null;
        var value = authorizationHeader.AsSpan().Trim();
        if (value.Length <= BearerScheme.Length || !value.StartsWith(BearerScheme, StringComparison.OrdinalIgnoreCase) || value[BearerScheme.Length] != ' ')
        {
            return false;
        }

        return TryMatchKey(value[BearerScheme.Length..].Trim(), out caller);
    }

    /// <summary>Whether <paramref name="key"/> is one of the keys. Every digest is compared, whichever matches.</summary>
    public bool TryMatchKey(ReadOnlySpan<char> key, [NotNullWhen(true)] out ApiCaller? caller)
    {
        caller = null;
        if (key.IsEmpty)
        {
            return false;
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        byte[] bytes = new byte[Encoding.UTF8.GetByteCount(key)];
        Encoding.UTF8.GetBytes(key, bytes);
        SHA256.HashData(bytes, digest);
        CryptographicOperations.ZeroMemory(bytes);
        int match = -1;
        for (int i = 0; i < _digests.Length; i++)
        {
            // No early exit: the loop takes as long whichever key (if any) matched.
            if (CryptographicOperations.FixedTimeEquals(digest, _digests[i]))
            {
                match = i;
            }
        }

        if (match < 0)
        {
            return false;
        }

        caller = _callers[match];
        return true;
    }

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
