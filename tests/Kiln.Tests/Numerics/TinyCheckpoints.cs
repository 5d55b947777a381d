using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Runtime.Formats.Gguf;

namespace Kiln.Tests.Numerics;

/// <summary>
/// A checkpoint written to disk. <see cref="Stored"/> holds, under logical names and in Hugging Face row order, the
/// values the file really stores (after F16/BF16/Q8_0 rounding): the float64 reference computes from these.
/// <see cref="InFile"/> is the same in the file's own row order (Q and K permuted for a converted GGUF).
/// </summary>
public sealed record WrittenCheckpoint(string Path, IReadOnlyDictionary<string, float[]> Stored, IReadOnlyDictionary<string, float[]> InFile);

/// <summary>One tensor as a safetensors file will hold it; a test may change or drop it before the file is written.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, byte[] Data);

/// <summary>One tensor as a GGUF file will hold it; a test may change or drop it before the file is written.</summary>
public sealed record GgufTensorEntry(string Name, long[] Dimensions, GgmlType Type, byte[] Data);

/// <summary>Writes a <see cref="TinyLlama"/> as a Hugging Face directory (single file or two shards) or as a GGUF file.</summary>
public static class TinyCheckpoints
{
    public static string HuggingFaceName(string logical) => logical switch
    {
        "embed" => "model.embed_tokens.weight",
        "norm" => "model.norm.weight",
        "lm_head" => "lm_head.weight",
        _ => $"model.layers.{LayerOf(logical)}." + PartOf(logical) switch
        {
            "attn_norm" => "input_layernorm.weight",
            "q" => "self_attn.q_proj.weight",
            "k" => "self_attn.k_proj.weight",
            "v" => "self_attn.v_proj.weight",
            "o" => "self_attn.o_proj.weight",
            "q_bias" => "self_attn.q_proj.bias",
            "k_bias" => "self_attn.k_proj.bias",
            "v_bias" => "self_attn.v_proj.bias",
            "q_norm" => "self_attn.q_norm.weight",
            "k_norm" => "self_attn.k_norm.weight",
            "ffn_norm" => "post_attention_layernorm.weight",
            "gate" => "mlp.gate_proj.weight",
            "up" => "mlp.up_proj.weight",
            "down" => "mlp.down_proj.weight",
            var p => throw new ArgumentOutOfRangeException(nameof(logical), p, null),
        },
    };

    public static string GgufName(string logical) => logical switch
    {
        "embed" => "token_embd.weight",
        "norm" => "output_norm.weight",
        "lm_head" => "output.weight",
        _ => $"blk.{LayerOf(logical)}." + PartOf(logical) switch
        {
            "o" => "attn_output.weight",
            "q" or "k" or "v" => $"attn_{PartOf(logical)}.weight",
            "q_bias" or "k_bias" or "v_bias" => $"attn_{PartOf(logical)[0]}.bias",
            "q_norm" or "k_norm" => $"attn_{PartOf(logical)}.weight",
            "gate" or "up" or "down" => $"ffn_{PartOf(logical)}.weight",
            var p => $"{p}.weight",
        },
    };

    /// <summary>config.json as transformers writes it for the spec.</summary>
    public static JsonObject Config(TinyLlamaSpec spec)
    {
        string modelType = spec.Architecture switch
        {
            "Qwen2ForCausalLM" => "qwen2",
            "Qwen3ForCausalLM" => "qwen3",
            "MistralForCausalLM" => "mistral",
            _ => "llama",
        };
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(spec.Architecture),
            ["model_type"] = modelType,
            ["vocab_size"] = spec.VocabSize,
            ["hidden_size"] = spec.Hidden,
            ["intermediate_size"] = spec.Intermediate,
            ["num_hidden_layers"] = spec.Layers,
            ["num_attention_heads"] = spec.Heads,
            ["num_key_value_heads"] = spec.KvHeads,
            ["max_position_embeddings"] = spec.MaxPositions,
            ["rms_norm_eps"] = spec.RmsNormEps,
            ["hidden_act"] = "silu",
            ["tie_word_embeddings"] = spec.Tied,
            ["torch_dtype"] = spec.Storage.ToString().ToLowerInvariant().Replace("bf16", "bfloat16", StringComparison.Ordinal),
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
        };
        if (spec.ExplicitHeadDim is { } headDim)
        {
            config["head_dim"] = headDim;
        }

        if (modelType is "llama" or "qwen3")
        {
            config["attention_bias"] = spec.AttentionBias;
        }

        if (modelType == "qwen3")
        {
            // Qwen3's configs always state head_dim (128 on 0.6B with hidden 1024 and 16 heads: not hidden / heads).
            config["head_dim"] = spec.HeadDim;
        }
        else if (modelType == "mistral")
        {
            config["sliding_window"] = null;
        }

        JsonObject? scaling = spec.Llama3 is { } s
            ? new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = s.Factor,
                ["low_freq_factor"] = s.LowFrequencyFactor,
                ["high_freq_factor"] = s.HighFrequencyFactor,
                ["original_max_position_embeddings"] = s.OriginalMaxPositions,
            }
            : null;
        if (spec.RopeStyle == RopeConfigStyle.TopLevel)
        {
            config["rope_theta"] = spec.RopeTheta;
            config["rope_scaling"] = scaling;
        }
        else
        {
            var block = scaling ?? new JsonObject { ["rope_type"] = "default" };
            block["rope_theta"] = spec.RopeTheta;
            config["rope_parameters"] = block;
        }

        return config;
    }

    public static WrittenCheckpoint WriteHuggingFace(
        string directory,
        TinyLlama model,
        bool sharded = false,
        Action<JsonObject>? editConfig = null,
        Func<SafetensorsEntry, SafetensorsEntry?>? editTensor = null)
    {
        Directory.CreateDirectory(directory);
        var config = Config(model.Spec);
        editConfig?.Invoke(config);
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        var stored = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var shards = new[] { new SafetensorsTestWriter(), new SafetensorsTestWriter() };
        var weightMap = new JsonObject();
        string[] shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
        foreach (var t in model.Tensors)
        {
            // Checkpoints keep one dtype for everything, norm weights and biases included.
            stored[t.Name] = StorageCodec.RoundTrip(t.Values, model.Spec.Storage);
            long[] shape = t.IsVector ? [t.Columns] : [t.Rows, t.Columns];
            int shard = sharded && !(t.Name == "embed" || t.Name.StartsWith("L0.", StringComparison.Ordinal)) ? 1 : 0;
            var entry = new SafetensorsEntry(HuggingFaceName(t.Name), StorageCodec.SafetensorsDType(model.Spec.Storage), shape, StorageCodec.Encode(t.Values, model.Spec.Storage));
            if ((editTensor is null ? entry : editTensor(entry)) is { } e)
            {
                shards[shard].Add(e.Name, e.DType, e.Shape, e.Data);
                weightMap[e.Name] = shardNames[shard];
            }
        }

        if (sharded)
        {
            shards[0].WriteTo(Path.Combine(directory, shardNames[0]));
            shards[1].WriteTo(Path.Combine(directory, shardNames[1]));
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = shards[0].DataBytes + shards[1].DataBytes },
                ["weight_map"] = weightMap,
            };
            File.WriteAllText(Path.Combine(directory, "model.safetensors.index.json"), index.ToJsonString());
        }
        else
        {
            shards[0].WriteTo(Path.Combine(directory, "model.safetensors"));
        }

        return new WrittenCheckpoint(directory, stored, stored);
    }

    /// <summary>
    /// Writes a GGUF file of architecture llama. Vectors stay F32 as llama.cpp keeps them; matrices use the spec's
    /// storage. With <paramref name="convertedFromHuggingFace"/>, Q and K are permuted as llama.cpp's converter does,
    /// so the file's adjacent-pair RoPE must reproduce the Hugging Face model's half-split RoPE.
    /// </summary>
    public static WrittenCheckpoint WriteGguf(
        string path,
        TinyLlama model,
        bool convertedFromHuggingFace = false,
        Func<GgufTensorEntry, GgufTensorEntry?>? editTensor = null,
        IReadOnlyDictionary<string, object?>? metadataOverrides = null)
    {
        var spec = model.Spec;
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["general.architecture"] = "llama",
            ["general.name"] = "tiny random llama",
            ["llama.vocab_size"] = (uint)spec.VocabSize,
            ["llama.context_length"] = (uint)spec.MaxPositions,
            ["llama.embedding_length"] = (uint)spec.Hidden,
            ["llama.block_count"] = (uint)spec.Layers,
            ["llama.feed_forward_length"] = (uint)spec.Intermediate,
            ["llama.attention.head_count"] = (uint)spec.Heads,
            ["llama.attention.head_count_kv"] = (uint)spec.KvHeads,
            ["llama.attention.layer_norm_rms_epsilon"] = (float)spec.RmsNormEps,
            ["llama.rope.freq_base"] = (float)spec.RopeTheta,
            ["llama.rope.dimension_count"] = (uint)spec.HeadDim,
        };
        if (spec.ExplicitHeadDim is { } headDim)
        {
            metadata["llama.attention.key_length"] = (uint)headDim;
            metadata["llama.attention.value_length"] = (uint)headDim;
        }

        // An override of null removes the key.
        foreach (var (key, value) in metadataOverrides ?? new Dictionary<string, object?>())
        {
            if (value is null)
            {
                metadata.Remove(key);
            }
            else
            {
                metadata[key] = value;
            }
        }

        var writer = new GgufWriter();
        foreach (var (key, value) in metadata)
        {
            writer.Add(key, value);
        }

        var stored = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var inFile = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var entries = new List<GgufTensorEntry>();
        foreach (var t in model.Tensors)
        {
            var type = t.IsVector ? StoredType.F32 : spec.Storage;
            float[] values = t.Values;
            string part = t.Name.Contains('.', StringComparison.Ordinal) ? PartOf(t.Name) : "";
            if (convertedFromHuggingFace && part is "q" or "k" or "q_bias" or "k_bias")
            {
                int heads = part[0] == 'q' ? spec.Heads : spec.KvHeads;
                values = TinyLlama.PermuteForAdjacentRope(values, heads, spec.HeadDim, t.IsVector ? 1 : t.Columns);
            }

            // Permuting whole rows commutes with rounding (Q8_0 blocks lie within a row), so Stored is in HF order.
            stored[t.Name] = StorageCodec.RoundTrip(t.Values, type);
            inFile[t.Name] = StorageCodec.RoundTrip(values, type);
            long[] dims = t.IsVector ? [t.Columns] : [t.Columns, t.Rows];
            entries.Add(new GgufTensorEntry(GgufName(t.Name), dims, ToGgml(type), StorageCodec.Encode(values, type)));
        }

        if (spec.Llama3 is { } scaling)
        {
            float[] factors = ConverterRopeFactors(spec.RopeTheta, spec.HeadDim, scaling);
            entries.Add(new GgufTensorEntry("rope_freqs.weight", [factors.Length], GgmlType.F32, StorageCodec.Encode(factors, StoredType.F32)));
        }

        foreach (var entry in entries)
        {
            if ((editTensor is null ? entry : editTensor(entry)) is { } e)
            {
                writer.AddRawTensor(e.Name, e.Dimensions, e.Type, e.Data);
            }
        }

        writer.WriteTo(path);
        return new WrittenCheckpoint(path, stored, inFile);
    }

    /// <summary>
    /// llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) stores llama3 scaling as per-frequency
    /// divisors: 1 for high frequencies, factor for low ones, 1 / ((1 - smooth) / factor + smooth) between.
    /// </summary>
    public static float[] ConverterRopeFactors(double theta, int headDim, Llama3Scaling s)
    {
        double lowWavelength = s.OriginalMaxPositions / s.LowFrequencyFactor;
        double highWavelength = s.OriginalMaxPositions / s.HighFrequencyFactor;
        var factors = new float[headDim / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            double frequency = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highWavelength)
            {
                factors[i] = 1;
            }
            else if (wavelength > lowWavelength)
            {
                factors[i] = (float)s.Factor;
            }
            else
            {
                double smooth = ((s.OriginalMaxPositions / wavelength) - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                factors[i] = (float)(1 / (((1 - smooth) / s.Factor) + smooth));
            }
        }

        return factors;
    }

    private static GgmlType ToGgml(StoredType type) => type switch
    {
        StoredType.F32 => GgmlType.F32,
        StoredType.F16 => GgmlType.F16,
        StoredType.BF16 => GgmlType.BF16,
        StoredType.Q8_0 => GgmlType.Q8_0,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static string LayerOf(string logical) => logical[1..logical.IndexOf('.', StringComparison.Ordinal)];

    private static string PartOf(string logical) => logical[(logical.IndexOf('.', StringComparison.Ordinal) + 1)..];
}
