using Kiln.Runtime.Models;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>A model ready to run: its config, its weights (owning their memory) and, where the files have one, its tokenizer.</summary>
public sealed class LoadedModel(string source, ModelConfig config, ModelWeights weights, KilnTokenizer? tokenizer, int? bosTokenId, IReadOnlyList<int> eosTokenIds) : IDisposable
{
    /// <summary>The path it came from, or "demo" for the built-in model.</summary>
    public string Source { get; } = source;

    public ModelConfig Config { get; } = config;

    public ModelWeights Weights { get; } = weights;

    public KilnTokenizer? Tokenizer { get; } = tokenizer;

    public int? BosTokenId { get; } = bosTokenId ?? tokenizer?.BosTokenId;

    public IReadOnlyList<int> EosTokenIds { get; } = eosTokenIds.Count > 0 ? eosTokenIds : tokenizer?.EosTokenIds ?? [];

    /// <summary>The tokenizer, or a clear error when the model directory has none.</summary>
    public KilnTokenizer RequireTokenizer() =>
        Tokenizer ?? throw new InvalidOperationException($"{Source}: no tokenizer (tokenizer.json) was found beside the model, so text cannot be encoded; pass token ids instead");

    public void Dispose() => Weights.Dispose();
}
