using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Microsoft.Extensions.Configuration;

namespace Kiln.Functions.Hosting;

/// <summary>
/// The app's settings, from configuration section <c>Kiln</c> (app setting or environment <c>Kiln__Model</c>,
/// command line <c>--Kiln:Model</c>): the model path (a Hugging Face directory or a GGUF file; the demo model when
/// unset) and the engine options by their property names (<c>Kiln:MaxSequences</c>, <c>Kiln:KvCacheBytes</c>, ...).
/// </summary>
public sealed record KilnSettings
{
    public const string Section = "Kiln";

    /// <summary>The id the demo model is served under.</summary>
    public const string DemoModelId = "kiln-demo";

    public string? ModelPath { get; init; }

    public EngineOptions Engine { get; init; } = new();

    /// <summary>The model id clients must name: the file or directory name, or <see cref="DemoModelId"/>.</summary>
    public string ModelId => ModelIdFor(ModelPath);

    public static KilnSettings FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(Section);

        // The binder sets init-only properties; unknown keys (Model, Queue...) are ignored.
        var engine = section.Get<EngineOptions>() ?? new EngineOptions();
        return new KilnSettings { ModelPath = NullIfBlank(section["Model"]), Engine = engine };
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
