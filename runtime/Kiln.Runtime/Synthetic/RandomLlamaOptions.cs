using System.Globalization;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Synthetic;

/// <summary>
/// Shape and storage of a random-weight Llama model written by <see cref="RandomLlamaGguf"/>.
/// The defaults are a tiny grouped-query model suitable for unit tests.
/// </summary>
public sealed record RandomLlamaOptions
{
    public int VocabSize { get; init; } = 512;

    public int Hidden { get; init; } = 64;

    public int Intermediate { get; init; } = 192;

    public int Layers { get; init; } = 2;

    public int Heads { get; init; } = 4;

    public int KvHeads { get; init; } = 2;

    public int ContextLength { get; init; } = 512;

    public float RopeBase { get; init; } = 10000f;

    public float RmsEps { get; init; } = 1e-5f;

    /// <summary>Tied classifier: no <c>output.weight</c> tensor; the logits use <c>token_embd.weight</c>.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>Storage of the 2-D weight matrices (token embedding and classifier included); norms are always F32.</summary>
    public GgmlType WeightType { get; init; } = GgmlType.F32;

    public ulong Seed { get; init; } = 42;

    /// <summary>
    /// When set, every weight matrix's values are first rounded through this type (encoded, then decoded back to float)
    /// and only then stored as <see cref="WeightType"/>. With the same seed, an F32 file rounded through Q8_0 holds
    /// exactly the weights of the Q8_0 file, in a form every engine multiplies in float32.
    /// </summary>
    public GgmlType? RoundWeightsThrough { get; init; }

    /// <summary>
    /// Optional RoPE frequency factors (llama3-style scaling), one a rotary pair (<see cref="HeadDim"/> / 2 values),
    /// written as the <c>rope_freqs.weight</c> tensor; see <see cref="RandomLlamaGguf.Llama3RopeFactors"/>.
    /// </summary>
    public IReadOnlyList<float>? RopeFreqFactors { get; init; }

    public string Name { get; init; } = "kiln-random-llama";

    /// <summary>
    /// The GGUF architecture written: <c>llama</c>, <c>qwen2</c> (its metadata keys under <c>qwen2.</c>, Q/K/V
    /// biases, and the rotary layout llama.cpp uses for it, the half-split one) or <c>qwen3</c> (no biases, per-head
    /// query and key norms, the half-split layout, and its head size stated in attention.key_length).
    /// </summary>
    public string Architecture { get; init; } = "llama";

    /// <summary>A head size other than Hidden / Heads (Qwen3 0.6B: 128 with hidden 1024 and 16 heads).</summary>
    public int? ExplicitHeadDim { get; init; }

    internal bool HasAttentionBias => Architecture == "qwen2";

    internal bool HasQkNorm => Architecture == "qwen3";

    public int HeadDim => ExplicitHeadDim ?? (Hidden / Heads);

    /// <summary>Number of weights in the file (norms and the classifier included).</summary>
    public long ParameterCount
    {
        get
        {
            long h = Hidden, q = (long)Heads * HeadDim, kv = (long)KvHeads * HeadDim;
            long perLayer = (2 * h) + (h * q) + (2 * h * kv) + (q * h) + (3 * h * Intermediate) + (HasAttentionBias ? q + (2 * kv) : 0) + (HasQkNorm ? 2 * HeadDim : 0);
            long embeddings = (long)VocabSize * h * (TiedEmbeddings ? 1 : 2);
            return embeddings + (Layers * perLayer) + h + (RopeFreqFactors?.Count ?? 0);
        }
    }

    /// <summary>
    /// A file-name-safe key that changes whenever any option that affects the file's bytes changes; its "g" prefix is
    /// the generator's version, raised whenever the generator writes different bytes for the same options.
    /// </summary>
    public string CacheKey
    {
        get
        {
            var c = CultureInfo.InvariantCulture;
            string rope = RopeFreqFactors is null
                ? string.Empty
                : "-rf" + RopeFreqFactors.Aggregate(17L, (a, f) => (a * 31) + BitConverter.SingleToInt32Bits(f)).ToString("x", c);
            return string.Create(
                c,
                $"g2-{Architecture}-v{VocabSize}-h{Hidden}-i{Intermediate}-l{Layers}-a{Heads}-kv{KvHeads}-c{ContextLength}" +
                $"-rb{RopeBase:R}-e{RmsEps:R}-{(TiedEmbeddings ? "tied" : "untied")}-{WeightType}{(RoundWeightsThrough is { } r ? "-via" + r : "")}-s{Seed}{rope}{(ExplicitHeadDim is { } d ? "-hd" + d : "")}");
        }
    }

    internal void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok)
            {
                throw new ArgumentException(message, "options");
            }
        }

        Check(Hidden > 0 && Intermediate > 0 && Layers > 0 && Heads > 0 && KvHeads > 0, "sizes must be positive");
        Check(Hidden % Heads == 0, $"hidden {Hidden} is not a multiple of heads {Heads}");
        Check(HeadDim % 2 == 0, $"head dimension {HeadDim} must be even for RoPE");
        Check(Heads % KvHeads == 0, $"heads {Heads} is not a multiple of kv heads {KvHeads}");
        Check(VocabSize >= SyntheticVocabulary.MinimumSize, $"vocabulary size must be at least {SyntheticVocabulary.MinimumSize}");
        Check(ContextLength > 0, "context length must be positive");
        Check(Architecture is "llama" or "qwen2" or "qwen3", $"unsupported architecture '{Architecture}': llama, qwen2 or qwen3");
        Check(RopeFreqFactors is null || RopeFreqFactors.Count == HeadDim / 2, $"RoPE frequency factors need {HeadDim / 2} values");
        Check(
            WeightType is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 || RandomBlocks.Supports(WeightType),
            $"unsupported weight type {WeightType}");
        Check(Divides(BlockValues(WeightType)), $"{WeightType} needs hidden, intermediate and heads * head_dim to be multiples of {BlockValues(WeightType)}");
        Check(
            RoundWeightsThrough is null or GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 ||
            ((RoundWeightsThrough == GgmlType.Q8_0 || RandomBlocks.Supports(RoundWeightsThrough.Value)) && Divides(BlockValues(RoundWeightsThrough.Value))),
            $"cannot round weights through {RoundWeightsThrough}");
    }

    private bool Divides(int block) => Hidden % block == 0 && Intermediate % block == 0 && (Heads * HeadDim) % block == 0;

    private static int BlockValues(GgmlType type) => GgmlTypes.ToWeightType(type) is { } stored ? WeightTypeInfo.BlockValues(stored) : 1;
}
