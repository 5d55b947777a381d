using System.Text.Json;
using Kiln.Runtime.Formats;
using Kiln.Runtime.Formats.Safetensors;
using Kiln.Runtime.Tensors;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>
/// Loads a Hugging Face model directory: config.json, model.safetensors or a sharded set named by
/// model.safetensors.index.json, and tokenizer.json (optional: logits need only ids).
/// </summary>
public static class HuggingFaceLoader
{
    public static LoadedModel Load(string directory, IProgress<LoadProgress>? progress = null)
    {
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"{directory}: no config.json, so this is not a Hugging Face model directory", configPath);
        }

        var (config, bos, eos) = HuggingFaceConfig.Read(configPath);
        var generationEos = ReadGenerationEos(Path.Combine(directory, "generation_config.json"));
        var shards = OpenShards(directory);
        try
        {
            progress?.Report(new LoadProgress("mapping", shards.Files.Count, shards.Files.Count));
            var weights = WeightsBuilder.Build(config, shards, TensorNames.HuggingFace, shards.Files, progress);
            var tokenizer = LoadTokenizer(directory);
            return new LoadedModel(directory, config, weights, tokenizer, bos, generationEos.Length > 0 ? generationEos : eos);
        }
        catch
        {
            shards.Dispose();
            throw;
        }
    }

    public static KilnTokenizer? LoadTokenizer(string directory)
    {
        string tokenizerPath = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(tokenizerPath))
        {
            return null;
        }

        string configPath = Path.Combine(directory, "tokenizer_config.json");
        return TokenizerLoader.FromHuggingFace(tokenizerPath, File.Exists(configPath) ? configPath : null);
    }

    private static int[] ReadGenerationEos(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return HuggingFaceConfig.ReadTokenIds(doc.RootElement, "eos_token_id");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, $"not valid JSON ({e.Message})", e);
        }
    }

    private static ShardSet OpenShards(string directory)
    {
        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        var files = new List<SafetensorsFile>();
        try
        {
            if (File.Exists(single))
            {
                files.Add(SafetensorsFile.Open(single));
            }
            else if (File.Exists(index))
            {
                foreach (string shard in ReadShardNames(index))
                {
                    files.Add(SafetensorsFile.Open(Path.Combine(directory, shard)));
                }
            }
            else
            {
                throw new FileNotFoundException($"{directory}: neither model.safetensors nor model.safetensors.index.json is present", single);
            }

            return new ShardSet(files);
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }
    }

    private static string[] ReadShardNames(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            return doc.RootElement.GetProperty("weight_map").EnumerateObject()
                .Select(p => p.Value.GetString() ?? throw new ModelFormatException(indexPath, $"weight_map entry '{p.Name}' is not a file name"))
                .Distinct(StringComparer.Ordinal)
                .ToArray();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ModelFormatException(indexPath, $"malformed index: {e.Message}", e);
        }
    }

    /// <summary>Every shard's tensors under one name lookup.</summary>
    private sealed class ShardSet(List<SafetensorsFile> files) : ITensorSource, IDisposable
    {
        private readonly Dictionary<string, SafetensorsFile> _byName = files
            .SelectMany(f => f.Tensors.Keys.Select(k => (k, f)))
            .GroupBy(p => p.k, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().f, StringComparer.Ordinal);

        public List<SafetensorsFile> Files { get; } = files;

        public bool Contains(string name) => _byName.ContainsKey(name);

        public WeightMatrix Matrix(string name, int rows, int columns) => Find(name).Matrix(name, rows, columns);

        public float[] Vector(string name, int length) => Find(name).Vector(name, length);

        private SafetensorsFile Find(string name) => _byName.TryGetValue(name, out var f)
            ? f
            : throw new ModelFormatException(Files[0].Path, $"tensor '{name}' is missing (looked in {Files.Count} safetensors file(s))");

        public void Dispose() => Files.ForEach(f => f.Dispose());
    }
}
