using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Microsoft.Extensions.Configuration;

namespace Kiln.Functions.Hosting;

/// <summary>Where the model runs (setting <c>Kiln:Device</c>).</summary>
public enum KilnDevice
{
    Cpu,

    /// <summary>NVIDIA GPUs through the CUDA backend: one, or one rank per GPU with <c>TensorParallelSize</c>.</summary>
    Cuda,
}

/// <summary>
/// The app's settings, from configuration section <c>Kiln</c> (app setting or environment <c>Kiln__Model</c>,
/// command line <c>--Kiln:Model</c>): the model path (a Hugging Face directory or a GGUF file; the demo model when
/// unset), the device (<c>Kiln:Device</c>, cpu or cuda) and the engine options by their property names
/// (<c>Kiln:MaxSequences</c>, <c>Kiln:KvCacheBytes</c>, ...), and how long a stopping pod drains
/// (<c>Kiln:DrainTimeoutSeconds</c>).
/// </summary>
public sealed record KilnSettings
{
    public const string Section = "Kiln";

    /// <summary>The id the demo model is served under.</summary>
    public const string DemoModelId = "kiln-demo";

    /// <summary>On a GPU the KV pool takes this share of the memory left after the weights, unless configured.</summary>
    public const double CudaKvCacheMemoryFraction = 0.9;

    public const string ModelKey = "Model";
    public const string DeviceKey = "Device";
    public const string DrainTimeoutKey = "DrainTimeoutSeconds";
    public const string MaxRequestBodyBytesKey = "MaxRequestBodyBytes";

    /// <summary>
    /// 8 MiB: a prompt filling a 128k-token context is about 0.5 MB of JSON, 128 prompts of token ids a few MB; a
    /// body beyond it is refused (413) before it is parsed, where Kestrel's default would let 30 MB through.
    /// </summary>
    public const long DefaultMaxRequestBodyBytes = 8L << 20;

    /// <summary>
    /// Below Kubernetes' terminationGracePeriodSeconds (120 in deploy/functions.yaml) less <see cref="StopMargin"/>,
    /// so a drained pod stops by itself before the kubelet kills it.
    /// </summary>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(100);

    /// <summary>The host's shutdown timeout is the drain plus this: the queue updates, Kestrel's stop and the engine's disposal.</summary>
    public static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(10);

    public string? ModelPath { get; init; }

    public KilnDevice Device { get; init; } = KilnDevice.Cpu;

    public EngineOptions Engine { get; init; } = new();

    /// <summary>How long a stopping pod lets its running calls and jobs finish before the engine stops.</summary>
    public TimeSpan DrainTimeout { get; init; } = DefaultDrainTimeout;

    /// <summary>Largest API request body accepted (<c>Kiln:MaxRequestBodyBytes</c>).</summary>
    public long MaxRequestBodyBytes { get; init; } = DefaultMaxRequestBodyBytes;

    /// <summary>
    /// Every key this record reads under section <see cref="Section"/>: its own and <see cref="EngineOptions"/>'
    /// property names (bound by name), and <see cref="AccessSettings.Keys"/>. Manifests are checked against it (with
    /// <c>JobOptions.Keys</c>).
    /// </summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        ModelKey, DeviceKey, DrainTimeoutKey, MaxRequestBodyBytesKey, .. AccessSettings.Keys,
        .. typeof(EngineOptions).GetProperties().Where(p => p.CanWrite).Select(p => p.Name),
    ];

    /// <summary>The device as the app reports it: <c>cpu</c> or <c>cuda</c>.</summary>
    public string DeviceName => Device == KilnDevice.Cuda ? "cuda" : "cpu";

    /// <summary>The model id clients must name: the file or directory name, or <see cref="DemoModelId"/>.</summary>
    public string ModelId => ModelIdFor(ModelPath);

    public static KilnSettings FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(Section);

        // The binder sets init-only properties; unknown keys (Model, Device, Queue...) are ignored.
        var engine = section.Get<EngineOptions>() ?? new EngineOptions();
        var device = ParseDevice(section[DeviceKey]);
        if (device == KilnDevice.Cuda && section[nameof(EngineOptions.KvCacheMemoryFraction)] is null)
        {
            // The CPU default (a quarter of RAM) suits a process that shares its host; a GPU is the server's own.
            engine = engine with { KvCacheMemoryFraction = CudaKvCacheMemoryFraction };
        }

        return new KilnSettings
        {
            ModelPath = NullIfBlank(section[ModelKey]),
            Device = device,
            Engine = engine,
            DrainTimeout = ParseDrainTimeout(section[DrainTimeoutKey]),
            MaxRequestBodyBytes = ParseBodyLimit(section[MaxRequestBodyBytesKey]),
        };
    }

    /// <summary>Whole or fractional seconds, at least 0 (unset: <see cref="DefaultDrainTimeout"/>); anything else fails the start.</summary>
    public static TimeSpan ParseDrainTimeout(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return DefaultDrainTimeout;
        }

        return double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) && seconds >= 0 && seconds <= TimeSpan.FromDays(1).TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new InvalidOperationException($"setting {Section}:{DrainTimeoutKey} (environment {Section}__{DrainTimeoutKey}) is '{value}': it must be a number of seconds, 0 or more");
    }

    /// <summary>A positive number of bytes (unset: <see cref="DefaultMaxRequestBodyBytes"/>); anything else fails the start.</summary>
    public static long ParseBodyLimit(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return DefaultMaxRequestBodyBytes;
        }

        return long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long bytes) && bytes > 0
            ? bytes
            : throw new InvalidOperationException($"setting {Section}:{MaxRequestBodyBytesKey} (environment {Section}__{MaxRequestBodyBytesKey}) is '{value}': it must be a positive number of bytes");
    }

    /// <summary>cpu (also when unset) or cuda, in any case; anything else fails the start, naming the setting.</summary>
    public static KilnDevice ParseDevice(string? value)
    {
        string text = value?.Trim() ?? string.Empty;
        if (text.Length == 0 || text.Equals("cpu", StringComparison.OrdinalIgnoreCase))
        {
            return KilnDevice.Cpu;
        }

        return text.Equals("cuda", StringComparison.OrdinalIgnoreCase)
            ? KilnDevice.Cuda
            : throw new InvalidOperationException($"setting {Section}:Device (environment {Section}__Device) is '{value}': it must be cpu or cuda");
    }

    public static string ModelIdFor(string? path)
    {
        if (string.IsNullOrWhiteSpace(path) || path == DemoModel.SourceName)
        {
            return DemoModelId;
        }

        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));

        // config.json or model.safetensors names its directory's model.
        if (File.Exists(full) && Path.GetFileName(full) is "config.json" or "model.safetensors")
        {
            full = Path.GetDirectoryName(full) ?? full;
        }

        return Path.GetFileName(full);
    }

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
