using Kiln.Runtime.Models;

namespace Kiln.Runtime.Loading;

/// <summary>Assembles <see cref="ModelWeights"/> from any tensor source, checking every shape against the config.</summary>
internal static class WeightsBuilder
{
    public static ModelWeights Build(
        ModelConfig c,
        ITensorSource source,
        TensorNames names,
        IEnumerable<IDisposable> owners,
        IProgress<LoadProgress>? progress,
        float[]? ropeFactors = null)
    {
        var embedding = source.Matrix(names.Embedding, c.VocabSize, c.HiddenSize);
        var layers = new LayerWeights[c.LayerCount];
        for (int i = 0; i < c.LayerCount; i++)
        {
            string N(string part) => names.Layer(i, part);
            float[]? Bias(string part, int length) => c.AttentionBias ? source.Vector(N(part), length) : null;
            float[]? HeadNorm(string part) => c.QkNorm ? source.Vector(N(part), c.HeadDim) : null;
            layers[i] = new LayerWeights
            {
                AttentionNorm = source.Vector(N("attn_norm"), c.HiddenSize),
                Query = source.Matrix(N("q"), c.QueryDim, c.HiddenSize),
                Key = source.Matrix(N("k"), c.KvDim, c.HiddenSize),
                Value = source.Matrix(N("v"), c.KvDim, c.HiddenSize),
                Output = source.Matrix(N("o"), c.HiddenSize, c.QueryDim),
                QueryBias = Bias("q_bias", c.QueryDim),
                KeyBias = Bias("k_bias", c.KvDim),
                ValueBias = Bias("v_bias", c.KvDim),
                QueryNorm = HeadNorm("q_norm"),
                KeyNorm = HeadNorm("k_norm"),
                FeedForwardNorm = source.Vector(N("ffn_norm"), c.HiddenSize),
                Gate = source.Matrix(N("gate"), c.IntermediateSize, c.HiddenSize),
                Up = source.Matrix(N("up"), c.IntermediateSize, c.HiddenSize),
                Down = source.Matrix(N("down"), c.HiddenSize, c.IntermediateSize),
            };
            progress?.Report(new LoadProgress("layers", i + 1, c.LayerCount));
        }

        var finalNorm = source.Vector(names.FinalNorm, c.HiddenSize);
        var classifier = c.TiedEmbeddings ? embedding : source.Matrix(names.Classifier, c.VocabSize, c.HiddenSize);
        return new ModelWeights(embedding, layers, finalNorm, classifier, ropeFactors, owners);
    }
}

/// <summary>Progress of a model load, for a progress bar: <paramref name="Done"/> of <paramref name="Total"/> units of a stage.</summary>
public readonly record struct LoadProgress(string Stage, int Done, int Total);
