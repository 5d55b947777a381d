using Kiln.Runtime.Models;
using Kiln.Tokenization;

namespace Kiln.Runtime.Loading;

/// <summary>
/// What the engine needs to know of a model besides its runner: where it came from, its configuration, its tokenizer
/// and its special tokens. A GPU runner holds the weights itself, so an engine over one needs no host copy of them.
/// </summary>
public sealed class ModelDescription(string source, ModelConfig config, KilnTokenizer? tokenizer, int? bosTokenId, IReadOnlyList<int> eosTokenIds)
{
    /// <summary>The path it came from, or "demo" for the built-in model.</summary>
    public string Source { get; } = source;

    public ModelConfig Config { get; } = config;

    public KilnTokenizer? Tokenizer { get; } = tokenizer;

    public int? BosTokenId { get; } = bosTokenId ?? tokenizer?.BosTokenId;

    public IReadOnlyList<int> EosTokenIds { get; } = eosTokenIds.Count > 0 ? eosTokenIds : tokenizer?.EosTokenIds ?? [];

    /// <summary>The tokenizer, or a clear error when the model directory has none.</summary>
    public KilnTokenizer RequireTokenizer() =>
        Tokenizer ?? throw new InvalidOperationException($"{Source}: no tokenizer (tokenizer.json) was found beside the model, so text cannot be encoded; pass token ids instead");
}
