using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace Kiln.Functions.Jobs;

/// <summary>
/// Where queue jobs come from and go, and the queue semantics the standalone poller copies from the Functions host.
/// Names come from <c>Kiln:JobQueue</c> and <c>Kiln:ResultContainer</c>; the numbers from host.json's
/// extensions.queues, overridable as the host allows (<c>AzureFunctionsJobHost:extensions:queues:*</c>, i.e. the
/// environment variable <c>AzureFunctionsJobHost__extensions__queues__visibilityTimeout</c>).
/// </summary>
public sealed record JobOptions
{
    public const string DefaultQueue = "kiln-jobs";
    public const string DefaultContainer = "kiln-results";
    public const string ConnectionSetting = "AzureWebJobsStorage";
    public const string HostOverridePrefix = "AzureFunctionsJobHost:extensions:queues:";

    /// <summary>The queue's setting, <c>Kiln:JobQueue</c> (the queue trigger's %Kiln:JobQueue% too).</summary>
    public const string QueueKey = "JobQueue";

    public const string ContainerKey = "ResultContainer";

    /// <summary>The keys read under section <c>Kiln</c>; manifests are checked against them (with <c>KilnSettings.Keys</c>).</summary>
    public static IReadOnlyList<string> Keys { get; } = [QueueKey, ContainerKey];

    public string? ConnectionString { get; init; }

    public string QueueName { get; init; } = DefaultQueue;

    public string ResultContainer { get; init; } = DefaultContainer;

    /// <summary>The host's default is 5; after this many failed deliveries a message goes to the poison queue.</summary>
    public int MaxDequeueCount { get; init; } = 5;

    /// <summary>How long a failed message stays invisible before its retry (the host's default is 0).</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.Zero;

    public int BatchSize { get; init; } = 16;

    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromMinutes(1);

    public string PoisonQueueName => QueueName + "-poison";

    /// <summary>The app settings plus host.json in <paramref name="appDirectory"/>; configuration wins over host.json.</summary>
    public static JobOptions FromConfiguration(IConfiguration configuration, string appDirectory)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = ReadHostJson(appDirectory) with
        {
            ConnectionString = Blank(configuration[ConnectionSetting]),
            QueueName = Blank(configuration[$"Kiln:{QueueKey}"]) ?? DefaultQueue,
            ResultContainer = Blank(configuration[$"Kiln:{ContainerKey}"]) ?? DefaultContainer,
        };
        return options with
        {
            MaxDequeueCount = Int(configuration[HostOverridePrefix + "maxDequeueCount"]) ?? options.MaxDequeueCount,
            VisibilityTimeout = Time(configuration[HostOverridePrefix + "visibilityTimeout"]) ?? options.VisibilityTimeout,
            BatchSize = Int(configuration[HostOverridePrefix + "batchSize"]) ?? options.BatchSize,
            MaxPollingInterval = Time(configuration[HostOverridePrefix + "maxPollingInterval"]) ?? options.MaxPollingInterval,
        };
    }

    private static JobOptions ReadHostJson(string directory)
    {
        var options = new JobOptions();
        string path = Path.Combine(directory, "host.json");
        if (!File.Exists(path))
        {
            return options;
        }

        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (!document.RootElement.TryGetProperty("extensions", out var extensions) || !extensions.TryGetProperty("queues", out var queues))
        {
            return options;
        }

        string? Read(string name) => queues.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText() : null;
        return options with
        {
            MaxDequeueCount = Int(Read("maxDequeueCount")) ?? options.MaxDequeueCount,
            VisibilityTimeout = Time(Read("visibilityTimeout")) ?? options.VisibilityTimeout,
            BatchSize = Int(Read("batchSize")) ?? options.BatchSize,
            MaxPollingInterval = Time(Read("maxPollingInterval")) ?? options.MaxPollingInterval,
        };
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static int? Int(string? value) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : null;

    private static TimeSpan? Time(string? value) => TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var t) ? t : null;
}
