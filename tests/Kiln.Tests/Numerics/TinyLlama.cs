namespace Kiln.Tests.Numerics;

/// <summary>Llama 3.1 RoPE frequency scaling, as transformers' config spells it (rope_type "llama3").</summary>
public sealed record Llama3Scaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor, int OriginalMaxPositions);

/// <summary>Where config.json puts the RoPE base and scaling.</summary>
public enum RopeConfigStyle
{
    /// <summary>rope_theta at the top level, scaling (if any) in a rope_scaling block: transformers up to 4.x.</summary>
    TopLevel,

    /// <summary>Everything in a rope_parameters block: transformers 5.</summary>
    RopeParametersBlock,
}

/// <summary>The shape of a small random Llama-family model that a test writes to disk and recomputes in float64.</summary>
public sealed record TinyLlamaSpec
{
    public string Architecture { get; init; } = "LlamaForCausalLM";

    public int VocabSize { get; init; } = 96;

    public int Hidden { get; init; } = 32;

    public int Intermediate { get; init; } = 64;

    public int Layers { get; init; } = 2;

    public int Heads { get; init; } = 4;

    public int KvHeads { get; init; } = 2;

    /// <summary>Null: hidden / heads, and config.json leaves head_dim out.</summary>
    public int? ExplicitHeadDim { get; init; }

    public int HeadDim => ExplicitHeadDim ?? (Hidden / Heads);

    public double RopeTheta { get; init; } = 10000;

    public double RmsNormEps { get; init; } = 1e-5;

    public Llama3Scaling? Llama3 { get; init; }

    public RopeConfigStyle RopeStyle { get; init; } = RopeConfigStyle.TopLevel;

    /// <summary>Qwen2 always has q/k/v biases; for Llama this is attention_bias.</summary>
    public bool AttentionBias { get; init; }

    public bool Tied { get; init; }

    public StoredType Storage { get; init; } = StoredType.F32;

    public int MaxPositions { get; init; } = 256;

    public int Seed { get; init; } = 1;

    public bool HasBiases => AttentionBias || Architecture == "Qwen2ForCausalLM";

    public bool HasQkNorm => Architecture == "Qwen3ForCausalLM";
}

/// <summary>
/// One logical tensor: a vector (norm weight, bias) of Columns values, or a [Rows x Columns] row-major matrix with
/// output features in rows, as PyTorch stores a linear layer.
/// </summary>
public sealed record LogicalTensor(string Name, int Rows, int Columns, float[] Values, bool IsVector);

/// <summary>
/// The float32 weights of a <see cref="TinyLlamaSpec"/>, under logical names ("embed", "lm_head", "norm", "L{i}.q",
/// "L{i}.q_bias", ...) that the checkpoint writers map to Hugging Face or GGUF names. Seeded, so a case is the same on
/// every run. Linear weights are uniform with variance 1/fan_in, which keeps activations O(1) through the layers.
/// </summary>
public sealed class TinyLlama
{
    public TinyLlama(TinyLlamaSpec spec)
    {
        Spec = spec;
        var random = new Random(spec.Seed);
        var tensors = new List<LogicalTensor>();

        void Matrix(string name, int rows, int columns, double scale) =>
            tensors.Add(new LogicalTensor(name, rows, columns, Uniform(random, rows * columns, scale, 0), IsVector: false));

        void Vector(string name, int length, double scale, double offset) =>
            tensors.Add(new LogicalTensor(name, 1, length, Uniform(random, length, scale, offset), IsVector: true));

        double Fan(int fanIn) => Math.Sqrt(3.0 / fanIn);
        int q = spec.Heads * spec.HeadDim;
        int kv = spec.KvHeads * spec.HeadDim;

        Matrix("embed", spec.VocabSize, spec.Hidden, 1.0);
        for (int i = 0; i < spec.Layers; i++)
        {
            // Norm weights away from 1 and sizable biases, so that a skipped norm weight or bias changes the logits.
            Vector($"L{i}.attn_norm", spec.Hidden, 0.3, 1.0);
            Matrix($"L{i}.q", q, spec.Hidden, Fan(spec.Hidden));
            Matrix($"L{i}.k", kv, spec.Hidden, Fan(spec.Hidden));
            Matrix($"L{i}.v", kv, spec.Hidden, Fan(spec.Hidden));
            if (spec.HasBiases)
            {
                Vector($"L{i}.q_bias", q, 0.5, 0);
                Vector($"L{i}.k_bias", kv, 0.5, 0);
                Vector($"L{i}.v_bias", kv, 0.5, 0);
            }

            if (spec.HasQkNorm)
            {
                Vector($"L{i}.q_norm", spec.HeadDim, 0.3, 1.0);
                Vector($"L{i}.k_norm", spec.HeadDim, 0.3, 1.0);
            }

            Matrix($"L{i}.o", spec.Hidden, q, Fan(q));
            Vector($"L{i}.ffn_norm", spec.Hidden, 0.3, 1.0);
            Matrix($"L{i}.gate", spec.Intermediate, spec.Hidden, Fan(spec.Hidden));
            Matrix($"L{i}.up", spec.Intermediate, spec.Hidden, Fan(spec.Hidden));
            Matrix($"L{i}.down", spec.Hidden, spec.Intermediate, Fan(spec.Intermediate));
        }

        Vector("norm", spec.Hidden, 0.3, 1.0);
        if (!spec.Tied)
        {
            Matrix("lm_head", spec.VocabSize, spec.Hidden, Fan(spec.Hidden));
        }

        Tensors = tensors;
    }

    public TinyLlamaSpec Spec { get; }

    public IReadOnlyList<LogicalTensor> Tensors { get; }

    /// <summary>Seeded token ids in [0, vocab).</summary>
    public int[] RandomTokens(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(Spec.VocabSize))];
    }

    /// <summary>
    /// llama.cpp's convert_hf_to_gguf.py permute(): reorders the rows of each head of Q or K (weight or bias) so that
    /// Hugging Face's half-split RoPE pairs (i, i + d/2) become adjacent pairs (2i, 2i + 1).
    /// </summary>
    public static float[] PermuteForAdjacentRope(ReadOnlySpan<float> values, int heads, int headDim, int columns)
    {
        var result = new float[values.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < half; i++)
            {
                for (int j = 0; j < 2; j++)
                {
                    int from = (h * headDim) + (j * half) + i;
                    int to = (h * headDim) + (2 * i) + j;
                    values.Slice(from * columns, columns).CopyTo(result.AsSpan(to * columns, columns));
                }
            }
        }

        return result;
    }

    private static float[] Uniform(Random random, int count, double scale, double offset)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(offset + (((2 * random.NextDouble()) - 1) * scale));
        }

        return values;
    }
}
