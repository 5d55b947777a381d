namespace Kiln.Tests.Numerics;

/// <summary>What the float64 reference needs to know about a model. Nothing here comes from Kiln's loaders.</summary>
public sealed record ReferenceConfig
{
    public required int VocabSize { get; init; }

    public required int Hidden { get; init; }

    public required int Intermediate { get; init; }

    public required int Layers { get; init; }

    public required int Heads { get; init; }

    public required int KvHeads { get; init; }

    public required int HeadDim { get; init; }

    public required double RmsNormEps { get; init; }

    public required double RopeTheta { get; init; }

    /// <summary>false: Hugging Face pairs (i, i + d/2); true: llama.cpp pairs (2i, 2i + 1).</summary>
    public required bool AdjacentRopePairs { get; init; }

    public Llama3Scaling? Llama3 { get; init; }

    public required bool AttentionBias { get; init; }

    public required bool Tied { get; init; }

    /// <summary>Qwen3: each query and key head RMS-normalised (weights "Ln.q_norm", "Ln.k_norm" of HeadDim) before RoPE.</summary>
    public bool QkNorm { get; init; }

    /// <summary>
    /// The reference for a spec. A GGUF file keeps epsilon and the RoPE base as float32, so the reference takes the
    /// same float32-rounded values when <paramref name="float32Hyperparameters"/>.
    /// </summary>
    public static ReferenceConfig From(TinyLlamaSpec spec, bool adjacentRopePairs, bool float32Hyperparameters = false) => new()
    {
        VocabSize = spec.VocabSize,
        Hidden = spec.Hidden,
        Intermediate = spec.Intermediate,
        Layers = spec.Layers,
        Heads = spec.Heads,
        KvHeads = spec.KvHeads,
        HeadDim = spec.HeadDim,
        RmsNormEps = float32Hyperparameters ? (float)spec.RmsNormEps : spec.RmsNormEps,
        RopeTheta = float32Hyperparameters ? (float)spec.RopeTheta : spec.RopeTheta,
        AdjacentRopePairs = adjacentRopePairs,
        Llama3 = spec.Llama3,
        AttentionBias = spec.HasBiases,
        Tied = spec.Tied,
        QkNorm = spec.HasQkNorm,
    };
}

/// <summary>
/// A plain float64 Llama forward pass written from the math, one sequence, every position: no caching, no batching,
/// no vectorisation, no shortcuts, so that it is obviously right by reading. Weights come by logical name ("embed",
/// "L0.q", ..., see <see cref="TinyLlama"/>) as float32 values widened to double.
/// </summary>
public sealed class ReferenceLlama(ReferenceConfig config, IReadOnlyDictionary<string, float[]> weights)
{
    /// <summary>Logits [position][vocab]: row t predicts the token after tokens[t].</summary>
    public double[][] AllLogits(IReadOnlyList<int> tokens)
    {
        var c = config;
        int n = tokens.Count;
        double[] inverseFrequencies = InverseFrequencies(c);

        var x = new double[n][];
        for (int t = 0; t < n; t++)
        {
            x[t] = Row("embed", tokens[t], c.Hidden);
        }

        for (int layer = 0; layer < c.Layers; layer++)
        {
            string L(string part) => $"L{layer}.{part}";
            var q = new double[n][];
            var k = new double[n][];
            var v = new double[n][];
            for (int t = 0; t < n; t++)
            {
                double[] h = RmsNorm(x[t], W(L("attn_norm")), c.RmsNormEps);
                q[t] = Linear(L("q"), h, c.AttentionBias ? L("q_bias") : null);
                k[t] = Linear(L("k"), h, c.AttentionBias ? L("k_bias") : null);
                v[t] = Linear(L("v"), h, c.AttentionBias ? L("v_bias") : null);
                if (c.QkNorm)
                {
                    NormaliseHeads(q[t], W(L("q_norm")), c);
                    NormaliseHeads(k[t], W(L("k_norm")), c);
                }
                Rotate(q[t], t, inverseFrequencies, c);
                Rotate(k[t], t, inverseFrequencies, c);
            }

            for (int t = 0; t < n; t++)
            {
                double[] attended = Attend(q, k, v, t, c);
                Add(x[t], Linear(L("o"), attended, null));
            }

            for (int t = 0; t < n; t++)
            {
                double[] h = RmsNorm(x[t], W(L("ffn_norm")), c.RmsNormEps);
                double[] gate = Linear(L("gate"), h, null);
                double[] up = Linear(L("up"), h, null);
                var product = new double[c.Intermediate];
                for (int i = 0; i < product.Length; i++)
                {
                    double silu = gate[i] / (1 + Math.Exp(-gate[i]));
                    product[i] = silu * up[i];
                }

                Add(x[t], Linear(L("down"), product, null));
            }
        }

        var logits = new double[n][];
        for (int t = 0; t < n; t++)
        {
            logits[t] = Linear(c.Tied ? "embed" : "lm_head", RmsNorm(x[t], W("norm"), c.RmsNormEps), null);
        }

        return logits;
    }

    /// <summary>
    /// theta^(-2i/d), then transformers' _compute_llama3_parameters: wavelengths longer than
    /// original/low_freq_factor are slowed by factor, shorter than original/high_freq_factor kept, the band between
    /// interpolated.
    /// </summary>
    public static double[] InverseFrequencies(ReferenceConfig c)
    {
        var inv = new double[c.HeadDim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            inv[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        }

        if (c.Llama3 is not { } s)
        {
            return inv;
        }

        double lowFrequencyWavelength = s.OriginalMaxPositions / s.LowFrequencyFactor;
        double highFrequencyWavelength = s.OriginalMaxPositions / s.HighFrequencyFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelength = 2 * Math.PI / inv[i];
            double scaled = wavelength > lowFrequencyWavelength ? inv[i] / s.Factor : inv[i];
            double smooth = ((s.OriginalMaxPositions / wavelength) - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
            double smoothed = ((1 - smooth) * scaled / s.Factor) + (smooth * scaled);
            bool medium = !(wavelength < highFrequencyWavelength) && !(wavelength > lowFrequencyWavelength);
            inv[i] = medium ? smoothed : scaled;
        }

        return inv;
    }

    /// <summary>Rotates each head's pairs by position * frequency, pairing dimensions by the config's layout.</summary>
    private static void Rotate(double[] heads, int position, double[] inverseFrequencies, ReferenceConfig c)
    {
        int half = c.HeadDim / 2;
        for (int head = 0; head < heads.Length / c.HeadDim; head++)
        {
            int b0 = head * c.HeadDim;
            for (int i = 0; i < half; i++)
            {
                int a = c.AdjacentRopePairs ? b0 + (2 * i) : b0 + i;
                int b = c.AdjacentRopePairs ? b0 + (2 * i) + 1 : b0 + i + half;
                double angle = position * inverseFrequencies[i];
                double x0 = heads[a];
                double x1 = heads[b];
                heads[a] = (x0 * Math.Cos(angle)) - (x1 * Math.Sin(angle));
                heads[b] = (x0 * Math.Sin(angle)) + (x1 * Math.Cos(angle));
            }
        }
    }

    /// <summary>Causal attention of position t: softmax(q k^T / sqrt(d)) v over positions 0..t, query head h reading KV head h / (heads / kvHeads).</summary>
    private static double[] Attend(double[][] q, double[][] k, double[][] v, int t, ReferenceConfig c)
    {
        int d = c.HeadDim;
        var output = new double[c.Heads * d];
        for (int head = 0; head < c.Heads; head++)
        {
            int kvHead = head / (c.Heads / c.KvHeads);
            var scores = new double[t + 1];
            for (int j = 0; j <= t; j++)
            {
                double dot = 0;
                for (int i = 0; i < d; i++)
                {
                    dot += q[t][(head * d) + i] * k[j][(kvHead * d) + i];
                }

                scores[j] = dot / Math.Sqrt(d);
            }

            double max = scores.Max();
            double sum = 0;
            for (int j = 0; j <= t; j++)
            {
                scores[j] = Math.Exp(scores[j] - max);
                sum += scores[j];
            }

            for (int j = 0; j <= t; j++)
            {
                for (int i = 0; i < d; i++)
                {
                    output[(head * d) + i] += scores[j] / sum * v[j][(kvHead * d) + i];
                }
            }
        }

        return output;
    }

    /// <summary>RMSNorm of each HeadDim slice with the one per-head weight, in place.</summary>
    private static void NormaliseHeads(double[] heads, float[] weight, ReferenceConfig c)
    {
        for (int start = 0; start < heads.Length; start += c.HeadDim)
        {
            double[] normed = RmsNorm(heads[start..(start + c.HeadDim)], weight, c.RmsNormEps);
            normed.CopyTo(heads, start);
        }
    }

    private static double[] RmsNorm(double[] x, float[] weight, double eps)
    {
        double meanSquare = x.Sum(value => value * value) / x.Length;
        double scale = 1 / Math.Sqrt(meanSquare + eps);
        return [.. x.Select((value, i) => value * scale * weight[i])];
    }

    /// <summary>y = W x (+ b) with W [rows x x.Length] row-major.</summary>
    private double[] Linear(string name, double[] x, string? bias)
    {
        float[] w = W(name);
        int rows = w.Length / x.Length;
        float[]? b = bias is null ? null : W(bias);
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = b is null ? 0 : b[r];
            for (int i = 0; i < x.Length; i++)
            {
                sum += (double)w[(r * x.Length) + i] * x[i];
            }

            y[r] = sum;
        }

        return y;
    }

    private double[] Row(string name, int row, int columns) => [.. W(name).AsSpan(row * columns, columns).ToArray().Select(v => (double)v)];

    private float[] W(string name) => weights.TryGetValue(name, out var w) ? w : throw new KeyNotFoundException($"the reference needs weight '{name}'");

    private static void Add(double[] x, double[] y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            x[i] += y[i];
        }
    }
}
