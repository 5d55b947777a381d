using Kiln.Runtime.Formats;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Loading;

/// <summary>Loads whatever a user points at: a Hugging Face directory, a GGUF file, or nothing (the demo model).</summary>
public static class ModelLoader
{
    public static LoadedModel Load(string? path, IProgress<LoadProgress>? progress = null)
    {
        if (string.IsNullOrWhiteSpace(path) || path == DemoModel.SourceName)
        {
            return DemoModel.Create(progress);
        }

        if (Directory.Exists(path))
        {
            return HuggingFaceLoader.Load(path, progress);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such model file or directory", path);
        }

        if (IsGguf(path))
        {
            return GgufLoader.Load(path, progress);
        }

        if (Path.GetFileName(path) is "config.json" or "model.safetensors")
        {
            return HuggingFaceLoader.Load(Path.GetDirectoryName(Path.GetFullPath(path))!, progress);
        }

        throw new ModelFormatException(path, "not a GGUF file (bad magic) and not a Hugging Face model directory");
    }

    /// <summary>
    /// The configuration alone, without mapping any weights: from a Hugging Face directory or its config.json (which
    /// may stand alone), a GGUF file's metadata, or the demo model's. For tools that size things for a model, such as
    /// compiling its GPU kernels ahead of time.
    /// </summary>
    public static ModelConfig ReadConfig(string? path)
    {
        if (string.IsNullOrWhiteSpace(path) || path == DemoModel.SourceName)
        {
            return DemoModel.Config;
        }

        string configJson = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (Path.GetFileName(configJson) == "config.json" && File.Exists(configJson))
        {
            return HuggingFaceConfig.Read(configJson).Config;
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such model file or directory (a Hugging Face directory, its config.json, or a GGUF file)", path);
        }

        if (!IsGguf(path))
        {
            throw new ModelFormatException(path, "not a GGUF file (bad magic) and not a Hugging Face config.json");
        }

        using var file = GgufFile.Open(path);
        return GgufLoader.ReadConfig(file);
    }

    private static bool IsGguf(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var stream = File.OpenRead(path);
        return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8)
            || path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
    }
}
