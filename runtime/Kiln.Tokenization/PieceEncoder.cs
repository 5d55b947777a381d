using System.Text;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tokenization;

/// <summary>
/// Runs the BPE merges for one pre-token. This is the part Microsoft.ML.Tokenizers does for us;
/// splitting, normalisation and special tokens stay in Kiln so every kind shares one front end.
/// </summary>
internal abstract class PieceEncoder
{
    public abstract void Encode(ReadOnlySpan<char> piece, List<int> output);
}

/// <summary>Merge-list BPE (Hugging Face "BPE" model) via <see cref="BpeTokenizer"/>.</summary>
internal sealed class LibraryBpePieceEncoder : PieceEncoder
{
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabulary;
    private readonly bool _byteLevel;
    private readonly bool _ignoreMerges;

    /// <param name="bpe">Vocabulary and merges, no pre-tokenizer or normalizer.</param>
    /// <param name="vocabulary">The same vocabulary, for the ignore_merges whole-word lookup.</param>
    /// <param name="byteLevel">Whether vocabulary strings are in the GPT-2 byte alphabet.</param>
    /// <param name="ignoreMerges">
    /// HF's ignore_merges (Llama 3): a pre-token that is itself in the vocabulary is emitted as-is.
    /// BpeTokenizer has no such option, so the lookup happens here.
    /// </param>
    public LibraryBpePieceEncoder(BpeTokenizer bpe, Dictionary<string, int> vocabulary, bool byteLevel, bool ignoreMerges)
    {
        _bpe = bpe;
        _vocabulary = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        _byteLevel = byteLevel;
        _ignoreMerges = ignoreMerges;
    }

    public override void Encode(ReadOnlySpan<char> piece, List<int> output)
    {
        if (_ignoreMerges && TryWholePiece(piece, out var id))
        {
            output.Add(id);
            return;
        }

        output.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
    }

    private bool TryWholePiece(ReadOnlySpan<char> piece, out int id)
    {
        if (!_byteLevel)
        {
            return _vocabulary.TryGetValue(piece, out id);
        }

        var maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        Span<byte> utf8 = maxBytes <= 512 ? stackalloc byte[maxBytes] : new byte[maxBytes];
        var count = Encoding.UTF8.GetBytes(piece, utf8);
        Span<char> mapped = count <= 512 ? stackalloc char[count] : new char[count];
        for (var i = 0; i < count; i++)
        {
            mapped[i] = ByteLevelAlphabet.ToChar(utf8[i]);
        }

        return _vocabulary.TryGetValue(mapped, out id);
    }
}

/// <summary>Rank-based BPE over raw bytes via <see cref="TiktokenTokenizer"/> (GPT-2's own data).</summary>
internal sealed class TiktokenPieceEncoder(TiktokenTokenizer tiktoken) : PieceEncoder
{
    public override void Encode(ReadOnlySpan<char> piece, List<int> output) =>
        output.AddRange(tiktoken.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
}
