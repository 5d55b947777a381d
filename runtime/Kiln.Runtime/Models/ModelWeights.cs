using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Models;

/// <summary>The weights of one decoder layer. Matrices are [out x in]; biases are null where the model has none.</summary>
public sealed class LayerWeights
{
    public required float[] AttentionNorm { get; init; }

    public required WeightMatrix Query { get; init; }

    public required WeightMatrix Key { get; init; }

    public required WeightMatrix Value { get; init; }

    public required WeightMatrix Output { get; init; }

    public float[]? QueryBias { get; init; }

    public float[]? KeyBias { get; init; }

    public float[]? ValueBias { get; init; }

    /// <summary>Qwen3: the per-head RMSNorm weights [HeadDim] applied to every query head, and to every key head.</summary>
    public float[]? QueryNorm { get; init; }

    public float[]? KeyNorm { get; init; }

    public required float[] FeedForwardNorm { get; init; }

    public required WeightMatrix Gate { get; init; }

    public required WeightMatrix Up { get; init; }

    public required WeightMatrix Down { get; init; }
}

/// <summary>All weights of a Llama-family model, plus the owners of the memory they live in.</summary>
public sealed class ModelWeights : IDisposable
{
    private readonly IDisposable[] _owners;

    public ModelWeights(WeightMatrix embedding, IReadOnlyList<LayerWeights> layers, float[] finalNorm, WeightMatrix classifier, float[]? ropeFactors, IEnumerable<IDisposable> owners)
    {
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        Classifier = classifier;
        RopeFactors = ropeFactors;
        _owners = [.. owners];
    }

    /// <summary>[vocab x hidden].</summary>
    public WeightMatrix Embedding { get; }

    public IReadOnlyList<LayerWeights> Layers { get; }

    public float[] FinalNorm { get; }

    /// <summary>[vocab x hidden]; the same matrix as <see cref="Embedding"/> when the model ties them.</summary>
    public WeightMatrix Classifier { get; }

    /// <summary>Per-frequency divisors from GGUF's rope_freqs tensor (how llama.cpp stores llama3 scaling), or null.</summary>
    public float[]? RopeFactors { get; }

    public long ParameterCount
    {
        get
        {
            long n = (long)Embedding.Rows * Embedding.Columns + FinalNorm.Length;
            if (!ReferenceEquals(Classifier, Embedding))
            {
                n += (long)Classifier.Rows * Classifier.Columns;
            }

            foreach (var l in Layers)
            {
                foreach (var m in new[] { l.Query, l.Key, l.Value, l.Output, l.Gate, l.Up, l.Down })
                {
                    n += (long)m.Rows * m.Columns;
                }

                n += l.AttentionNorm.Length + l.FeedForwardNorm.Length;
            }

            return n;
        }
    }

    public void Dispose()
    {
        foreach (var owner in _owners)
        {
            owner.Dispose();
        }
    }
}
