using Kiln.Runtime.Models;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>A model ready to run: its description (config, tokenizer, special tokens) and its weights, owning their memory.</summary>
public sealed class LoadedModel(string source, ModelConfig config, ModelWeights weights, KilnTokenizer? tokenizer, int? bosTokenId, IReadOnlyList<int> eosTokenIds) : IDisposable
{
    public ModelDescription Description { get; } = new(source, config, tokenizer, bosTokenId, eosTokenIds);

    /// <summary>The path it came from, or "demo" for the built-in model.</summary>
    public string Source => Description.Source;

    public ModelConfig Config => Description.Config;

    public ModelWeights Weights { get; } = weights;

    public KilnTokenizer? Tokenizer => Description.Tokenizer;

    public int? BosTokenId => Description.BosTokenId;

    public IReadOnlyList<int> EosTokenIds => Description.EosTokenIds;

    /// <summary>The tokenizer, or a clear error when the model directory has none.</summary>
    public KilnTokenizer RequireTokenizer() => Description.RequireTokenizer();

    public void Dispose() => Weights.Dispose();
}
