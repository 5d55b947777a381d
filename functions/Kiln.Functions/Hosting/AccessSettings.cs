using Kiln.Access;
using Microsoft.Extensions.Configuration;

namespace Kiln.Functions.Hosting;

/// <summary>
/// Who may call the app, from section <c>Kiln</c>: <c>ApiKeys</c> (the bearer keys clients send; either form of
/// <see cref="ApiKeySet"/>), <c>MetricsKeys</c> (keys that read stats and metrics only: Prometheus', the scaler's)
/// and <c>AllowAnonymous</c> (serve without a key beyond loopback). With no API key the app serves loopback only
/// unless <c>AllowAnonymous</c> is true (<see cref="AccessGuard"/>); stats and metrics stay open while no key of either
/// kind is set.
/// </summary>
public sealed record AccessSettings
{
    public const string ApiKeysKey = "ApiKeys";
    public const string MetricsKeysKey = "MetricsKeys";
    public const string AllowAnonymousKey = "AllowAnonymous";

    /// <summary>The keys this record reads under <see cref="KilnSettings.Section"/> (the manifests are checked against them).</summary>
    public static IReadOnlyList<string> Keys { get; } = [ApiKeysKey, MetricsKeysKey, AllowAnonymousKey];

    public ApiKeySet ApiKeys { get; init; } = ApiKeySet.Empty;

    public ApiKeySet MetricsKeys { get; init; } = ApiKeySet.Empty;

    public bool AllowAnonymous { get; init; }

    public static AccessSettings FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return new AccessSettings
        {
            ApiKeys = ApiKeySet.FromConfiguration(configuration, $"{KilnSettings.Section}:{ApiKeysKey}"),
            MetricsKeys = ApiKeySet.FromConfiguration(configuration, $"{KilnSettings.Section}:{MetricsKeysKey}"),
            AllowAnonymous = ParseAllowAnonymous(configuration[$"{KilnSettings.Section}:{AllowAnonymousKey}"]),
        };
    }

    /// <summary>true or false in any case (unset: false); anything else fails the start, naming the setting.</summary>
    public static bool ParseAllowAnonymous(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        return bool.TryParse(value.Trim(), out bool allow)
            ? allow
            : throw new InvalidOperationException($"setting {KilnSettings.Section}:{AllowAnonymousKey} (environment {KilnSettings.Section}__{AllowAnonymousKey}) is '{value}': it must be true or false");
    }
}
