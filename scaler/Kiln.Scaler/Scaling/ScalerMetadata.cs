using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Kiln.Scaler.Scaling;

/// <summary>A scalerMetadata key is missing or invalid; the gRPC layer turns this into InvalidArgument naming the key.</summary>
public sealed class MetadataException(string key, string problem) : Exception($"scalerMetadata '{key}': {problem}")
{
    public string Key { get; } = key;
}

/// <summary>
/// The configuration of one ScaledObject, all of it from the trigger's metadata (KEDA passes the whole map,
/// scalerAddress included, as scalerMetadata). Parsed on every call: it is a handful of dictionary reads.
/// KEDA resolves every key ending in <c>FromEnv</c> against the environment of the scale target's containers and
/// sends the variable's value under the same key, dropping the key where the target lacks the variable
/// (kedacore/keda <c>pkg/scalers/external_scaler.go</c>, <c>parseExternalScalerMetadata</c>): so
/// <c>connectionFromEnv: AzureWebJobsStorage</c> arrives here as the function app's own connection string.
/// </summary>
public sealed record ScalerMetadata
{
    public const string DefaultGpuResource = "nvidia.com/gpu";

    public required string Name { get; init; }
    public required string Namespace { get; init; }
    public required string QueueName { get; init; }
    /// <summary>The storage connection string KEDA resolved from the target's variable (never logged).</summary>
    public required string ConnectionString { get; init; }
    public required int TpSize { get; init; }
    public string GpuResourceName { get; init; } = DefaultGpuResource;
    public required double TargetBacklogPerReplica { get; init; }
    public double ActivationThreshold { get; init; }
    public required LabelSelector PodSelector { get; init; }
    public required string PodNamespace { get; init; }
    public int PodStatsPort { get; init; } = 80;
    public string PodStatsPath { get; init; } = "/api/stats";
    public int DefaultMaxTokens { get; init; } = 256;
    public double StalenessSeconds { get; init; } = 60;

    /// <summary>The identity used for cache keys and the /metrics labels.</summary>
    public string Key => $"{Namespace}/{Name}";

    /// <summary>
    /// The queue as logs and cache keys name it: account (or queue endpoint) and queue, with a short hash of the
    /// connection string so two credentials for one account stay apart; the secret itself never appears.
    /// </summary>
    public string QueueSource => $"queue:{AccountOf(ConnectionString)}/{QueueName}#{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ConnectionString)))[..8]}";

    public static ScalerMetadata Parse(string name, string ns, IReadOnlyDictionary<string, string> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var podNamespace = Optional(map, "namespace") ?? (string.IsNullOrEmpty(ns) ? null : ns)
            ?? throw new MetadataException("namespace", "is required (no ScaledObject namespace to default to)");
        var selectorText = Required(map, "podSelector");
        LabelSelector selector;
        try
        {
            selector = LabelSelector.Parse(selectorText);
        }
        catch (FormatException e)
        {
            throw new MetadataException("podSelector", e.Message);
        }

        var path = Optional(map, "podStatsPath") ?? "/api/stats";
        if (!path.StartsWith('/'))
        {
            throw new MetadataException("podStatsPath", $"'{path}' must start with '/'");
        }

        return new ScalerMetadata
        {
            Name = name,
            Namespace = ns,
            QueueName = Required(map, "queueName"),
            ConnectionString = Connection(map),
            TpSize = (int)Number(map, "tpSize", null, min: 1, max: 64, integer: true),
            GpuResourceName = Optional(map, "gpuResourceName") ?? DefaultGpuResource,
            TargetBacklogPerReplica = Number(map, "targetBacklogPerReplica", null, min: double.Epsilon, max: 1e12),
            ActivationThreshold = Number(map, "activationThreshold", 0, min: 0, max: 1e12),
            PodSelector = selector,
            PodNamespace = podNamespace,
            PodStatsPort = (int)Number(map, "podStatsPort", 80, min: 1, max: 65535, integer: true),
            PodStatsPath = path,
            DefaultMaxTokens = (int)Number(map, "defaultMaxTokens", 256, min: 0, max: 10_000_000, integer: true),
            StalenessSeconds = Number(map, "stalenessSeconds", 60, min: 0, max: 86_400),
        };
    }

    private static string Connection(IReadOnlyDictionary<string, string> map)
    {
        const string Key = "connectionFromEnv";
        var value = Optional(map, Key) ?? throw new MetadataException(
            Key,
            "is missing: KEDA sends the value of the variable it names, taken from the scale target's containers, and drops the key when the "
            + "target Deployment lacks that variable or it is empty; define it there (the function app's AzureWebJobsStorage)");

        // A connection string is Key=Value pairs; a bare name means the key reached us unresolved (not through KEDA).
        if (!value.Contains('=', StringComparison.Ordinal))
        {
            throw new MetadataException(
                Key,
                $"'{value}' is not a storage connection string: KEDA resolves it from the scale target's environment, so the scaler expects the "
                + "variable's value here, not its name");
        }

        return value;
    }

    private static string AccountOf(string connectionString)
    {
        string? account = null;
        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            var (name, value) = eq < 0 ? (part, "") : (part[..eq], part[(eq + 1)..]);
            if (name.Equals("QueueEndpoint", StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }

            if (name.Equals("AccountName", StringComparison.OrdinalIgnoreCase))
            {
                account = value;
            }
            else if (name.Equals("UseDevelopmentStorage", StringComparison.OrdinalIgnoreCase))
            {
                account ??= "devstoreaccount1";
            }
        }

        return account ?? "unknown-account";
    }

    private static string Required(IReadOnlyDictionary<string, string> map, string key) =>
        Optional(map, key) ?? throw new MetadataException(key, "is required");

    private static string? Optional(IReadOnlyDictionary<string, string> map, string key) =>
        map.TryGetValue(key, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

    private static double Number(IReadOnlyDictionary<string, string> map, string key, double? fallback, double min, double max, bool integer = false)
    {
        var text = fallback is null ? Required(map, key) : Optional(map, key);
        if (text is null)
        {
            return fallback!.Value;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
        {
            throw new MetadataException(key, $"'{text}' is not a number");
        }

        if (integer && value != Math.Floor(value))
        {
            throw new MetadataException(key, $"'{text}' is not an integer");
        }

        if (value < min || value > max)
        {
            throw new MetadataException(key, $"'{text}' is out of range [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");
        }

        return value;
    }
}
