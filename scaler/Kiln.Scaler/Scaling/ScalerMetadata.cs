using System.Globalization;

namespace Kiln.Scaler.Scaling;

/// <summary>A scalerMetadata key is missing or invalid; the gRPC layer turns this into InvalidArgument naming the key.</summary>
public sealed class MetadataException(string key, string problem) : Exception($"scalerMetadata '{key}': {problem}")
{
    public string Key { get; } = key;
}

/// <summary>
/// The configuration of one ScaledObject, all of it from the trigger's metadata (KEDA passes the whole map,
/// scalerAddress included, as scalerMetadata). Parsed on every call: it is a handful of dictionary reads.
/// </summary>
public sealed record ScalerMetadata
{
    public const string DefaultGpuResource = "nvidia.com/gpu";

    public required string Name { get; init; }
    public required string Namespace { get; init; }
    public required string QueueName { get; init; }
    public required string ConnectionFromEnv { get; init; }
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
            ConnectionFromEnv = Required(map, "connectionFromEnv"),
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
