using System.Text.Json;
using Kiln.Runtime.Formats;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Loading;

/// <summary>Reads a Hugging Face config.json of the Llama family into a <see cref="ModelConfig"/>.</summary>
public static class HuggingFaceConfig
{
    private static readonly string[] SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"];

    public static (ModelConfig Config, int? Bos, int[] Eos) Read(string configPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(configPath, $"not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            try
            {
                return Parse(configPath, doc.RootElement);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException and not ModelFormatException)
            {
                throw new ModelFormatException(configPath, $"a field has the wrong type ({e.Message})", e);
            }
        }
    }

    private static (ModelConfig, int?, int[]) Parse(string path, JsonElement root)
    {
        string architecture = root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0
            ? archs[0].GetString() ?? ""
            : throw new ModelFormatException(path, "'architectures' is missing");
        if (!SupportedArchitectures.Contains(architecture))
        {
            throw new ModelFormatException(path, $"unsupported architecture '{architecture}' (supported: {string.Join(", ", SupportedArchitectures)})");
        }

        int Required(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number
            ? (v.TryGetInt32(out int n) ? n : throw new ModelFormatException(path, $"'{key}' is {v.GetRawText()}, not a 32-bit integer"))
            : throw new ModelFormatException(path, $"'{key}' is missing or not a number");

        int hidden = Required("hidden_size");
        int heads = Required("num_attention_heads");
        int? headDim = OptionalInt(root, "head_dim");
        var ropeBlock = root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object ? rp : (JsonElement?)null;
        double theta = OptionalDouble(root, "rope_theta")
            ?? (ropeBlock is { } b ? OptionalDouble(b, "rope_theta") : null)
            ?? 10000.0;

        bool qwen = architecture == "Qwen2ForCausalLM";
        var config = new ModelConfig
        {
            Architecture = architecture,
            VocabSize = Required("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Required("intermediate_size"),
            LayerCount = Required("num_hidden_layers"),
            HeadCount = heads,
            KvHeadCount = OptionalInt(root, "num_key_value_heads") ?? heads,
            HeadDim = headDim ?? (heads > 0 ? hidden / heads : 0),
            MaxPositions = OptionalInt(root, "max_position_embeddings") ?? 2048,
            RmsNormEps = OptionalDouble(root, "rms_norm_eps") ?? 1e-6,
            RopeTheta = theta,
            RopeLayout = RopeLayout.HalfSplit,
            RopeScaling = ReadScaling(path, root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : ropeBlock),
            // Qwen2 always has q/k/v biases; Llama and Qwen3 say so in attention_bias; Mistral has none.
            AttentionBias = qwen || (OptionalBool(root, "attention_bias") ?? false),
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings") ?? false,
            QkNorm = architecture == "Qwen3ForCausalLM",
        };
        config.Validate(path);
        return (config, OptionalInt(root, "bos_token_id"), ReadTokenIds(root, "eos_token_id"));
    }

    private static Llama3RopeScaling? ReadScaling(string path, JsonElement? block)
    {
        if (block is not { } s)
        {
            return null;
        }

        string type = (s.TryGetProperty("rope_type", out var t) ? t.GetString() : s.TryGetProperty("type", out var t2) ? t2.GetString() : null) ?? "default";
        return type switch
        {
            "default" => null,
            "llama3" => new Llama3RopeScaling(
                OptionalDouble(s, "factor") ?? throw new ModelFormatException(path, "llama3 RoPE scaling needs 'factor'"),
                OptionalDouble(s, "low_freq_factor") ?? 1.0,
                OptionalDouble(s, "high_freq_factor") ?? 4.0,
                OptionalInt(s, "original_max_position_embeddings") ?? 8192),
            _ => throw new ModelFormatException(path, $"unsupported RoPE scaling type '{type}' (supported: default, llama3)"),
        };
    }

    /// <summary>eos_token_id may be one id or a list (Llama 3 lists several).</summary>
    public static int[] ReadTokenIds(JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var v))
        {
            return [];
        }

        return v.ValueKind switch
        {
            JsonValueKind.Number => [v.GetInt32()],
            JsonValueKind.Array => [.. v.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Number).Select(e => e.GetInt32())],
            _ => [],
        };
    }

    private static int? OptionalInt(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    private static double? OptionalDouble(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool? OptionalBool(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}
