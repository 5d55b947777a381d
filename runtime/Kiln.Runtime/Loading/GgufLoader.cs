using Kiln.Runtime.Formats;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>
/// Loads a GGUF file of architecture <c>llama</c> (Llama, Mistral), <c>qwen2</c> or <c>qwen3</c> with its embedded
/// vocabulary. They share their tensor names; their metadata keys sit under the architecture's name, and they differ in
/// the rotary layout: llama.cpp's converter permutes Llama's Q and K so that adjacent dimensions pair, and leaves
/// Qwen's as Hugging Face has them (llama.cpp's NEOX rope: dimension i pairs with i + d/2). Qwen2 has Q/K/V biases;
/// Qwen3 has none, normalises each query and key head (attn_q_norm, attn_k_norm) and states its head size
/// (attention.key_length), which need not be hidden / heads.
/// </summary>
public static class GgufLoader
{
    public static LoadedModel Load(string path, IProgress<LoadProgress>? progress = null)
    {
        var file = GgufFile.Open(path);
        try
        {
            var config = ReadConfig(file);
            float[]? ropeFactors = file.Tensors.ContainsKey("rope_freqs.weight") ? file.Vector("rope_freqs.weight", config.HeadDim / 2) : null;
            var weights = WeightsBuilder.Build(config, new Source(file), TensorNames.Gguf, [file], progress, ropeFactors);
            KilnTokenizer? tokenizer = file.Metadata.ContainsKey("tokenizer.ggml.model") ? TokenizerLoader.FromGguf(file.Metadata, path) : null;
            int? bos = file.TryGet<long>("tokenizer.ggml.bos_token_id", out long b) ? (int)b : null;
            int[] eos = file.TryGet<long>("tokenizer.ggml.eos_token_id", out long e) ? [(int)e] : [];
            return new LoadedModel(path, config, weights, tokenizer, bos, eos);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static ModelConfig ReadConfig(GgufFile file)
    {
        string arch = file.Require<string>("general.architecture");
        if (arch is not ("llama" or "qwen2" or "qwen3"))
        {
            throw new ModelFormatException(file.Path, $"unsupported architecture '{arch}' (Kiln reads GGUF architectures 'llama', 'qwen2' and 'qwen3')");
        }

        int Int(string key) => Checked($"{arch}.{key}", file.Require<long>($"{arch}.{key}"));
        int Checked(string key, long value) => value is >= 0 and <= int.MaxValue
            ? (int)value
            : throw new ModelFormatException(file.Path, $"metadata key '{key}' = {value} is out of range");
        int hidden = Int("embedding_length");
        int heads = Int("attention.head_count");
        int vocab = file.TryGet<long>($"{arch}.vocab_size", out long v) ? Checked($"{arch}.vocab_size", v)
            : file.TryGet<string[]>("tokenizer.ggml.tokens", out var tokens) ? tokens.Length
            : (int)file.Tensor("token_embd.weight").Dimensions[^1];
        int headDim = file.TryGet<long>($"{arch}.attention.key_length", out long kl) ? Checked($"{arch}.attention.key_length", kl) : heads > 0 ? hidden / heads : 0;
        var config = new ModelConfig
        {
            Architecture = arch,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = Int("feed_forward_length"),
            LayerCount = Int("block_count"),
            HeadCount = heads,
            KvHeadCount = file.TryGet<long>($"{arch}.attention.head_count_kv", out long kv) ? Checked($"{arch}.attention.head_count_kv", kv) : heads,
            HeadDim = headDim,
            MaxPositions = Int("context_length"),
            RmsNormEps = file.TryGet<double>($"{arch}.attention.layer_norm_rms_epsilon", out double eps) ? eps : 1e-5,
            RopeTheta = file.TryGet<double>($"{arch}.rope.freq_base", out double theta) ? theta : 10000,
            RopeLayout = arch == "llama" ? RopeLayout.AdjacentPairs : RopeLayout.HalfSplit,
            AttentionBias = file.Tensors.ContainsKey("blk.0.attn_q.bias"),
            TiedEmbeddings = !file.Tensors.ContainsKey("output.weight"),
            QkNorm = file.Tensors.ContainsKey("blk.0.attn_q_norm.weight"),
        };
        if (arch == "qwen3" && !config.QkNorm)
        {
            throw new ModelFormatException(file.Path, "a qwen3 file needs per-head query and key norms, but tensor 'blk.0.attn_q_norm.weight' is missing");
        }

        config.Validate(file.Path);
        return config;
    }

    private sealed class Source(GgufFile file) : ITensorSource
    {
        public bool Contains(string name) => file.Tensors.ContainsKey(name);

        public WeightMatrix Matrix(string name, int rows, int columns) => file.Matrix(name, rows, columns);

        public float[] Vector(string name, int length) => file.Vector(name, length);
    }
}
