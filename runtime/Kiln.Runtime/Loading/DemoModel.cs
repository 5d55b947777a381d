using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>
/// The embedded default: a small Llama-architecture model with seeded random weights and GPT-2's real vocabulary,
/// built in memory so that Kiln runs on a fresh machine with nothing downloaded. Its text is meaningless by design;
/// it exists to exercise the whole serving path, deterministically.
/// </summary>
public static class DemoModel
{
    public const string SourceName = "demo";
    public const ulong Seed = 0x4B696C6E; // "Kiln"

    public static ModelConfig Config { get; } = new()
    {
        Architecture = "llama",
        VocabSize = 50257,
        HiddenSize = 256,
        IntermediateSize = 688,
        LayerCount = 4,
        HeadCount = 8,
        KvHeadCount = 4,
        HeadDim = 32,
        MaxPositions = 2048,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
        TiedEmbeddings = true,
    };

    public static unsafe LoadedModel Create(IProgress<LoadProgress>? progress = null)
    {
        var c = Config;

        // The vocabulary (a fifth of a second, mostly jitting the tokenizer library) builds on another core while the
        // weights are drawn: start-up is what a scaled-to-zero app is waiting on.
        var tokenizer = Task.Run(TokenizerLoader.CreateGpt2);
        var owners = new List<IDisposable>();
        var random = new DeterministicRandom(Seed);

        WeightMatrix Matrix(string name, int rows, int columns)
        {
            // Filled at once: clearing it first would only write every page twice.
            var buffer = NativeBuffer.ZeroedOnDemand((long)rows * columns * sizeof(float));
            owners.Add(buffer);
            // Uniform with the variance of N(0, 1/fan_in) keeps activations O(1) through the layers.
            random.Fill(new Span<float>(buffer.Floats, rows * columns), MathF.Sqrt(3f / columns));
            return new WeightMatrix(name, WeightType.F32, rows, columns, buffer.Pointer);
        }

        float[] Norm(int length)
        {
            var values = new float[length];
            random.Fill(values, 0.1f, 1f);
            return values;
        }

        var embedding = Matrix("embedding", c.VocabSize, c.HiddenSize);
        var layers = new LayerWeights[c.LayerCount];
        for (int i = 0; i < layers.Length; i++)
        {
            layers[i] = new LayerWeights
            {
                AttentionNorm = Norm(c.HiddenSize),
                Query = Matrix($"layers.{i}.q", c.QueryDim, c.HiddenSize),
                Key = Matrix($"layers.{i}.k", c.KvDim, c.HiddenSize),
                Value = Matrix($"layers.{i}.v", c.KvDim, c.HiddenSize),
                Output = Matrix($"layers.{i}.o", c.HiddenSize, c.QueryDim),
                FeedForwardNorm = Norm(c.HiddenSize),
                Gate = Matrix($"layers.{i}.gate", c.IntermediateSize, c.HiddenSize),
                Up = Matrix($"layers.{i}.up", c.IntermediateSize, c.HiddenSize),
                Down = Matrix($"layers.{i}.down", c.HiddenSize, c.IntermediateSize),
            };
            progress?.Report(new LoadProgress("generating", i + 1, layers.Length));
        }

        var weights = new ModelWeights(embedding, layers, Norm(c.HiddenSize), embedding, null, owners);
        var vocabulary = tokenizer.GetAwaiter().GetResult();
        return new LoadedModel(SourceName, c, weights, vocabulary, vocabulary.BosTokenId, vocabulary.EosTokenIds);
    }
}
