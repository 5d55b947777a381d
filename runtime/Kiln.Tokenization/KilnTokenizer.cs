using System.Buffers;
using System.Text;

namespace Kiln.Tokenization;

/// <summary>
/// A model's tokenizer: text to ids exactly as the model's own tokenizer produces them, and ids back
/// to bytes/text. Every id maps to a fixed byte sequence, so decoding is plain byte concatenation
/// followed by UTF-8 decoding; that is what makes streaming decode and batch decode agree.
/// </summary>
public abstract class KilnTokenizer
{
    private readonly TokenVocabulary _vocabulary;
    private readonly LiteralTokenSplitter _literals;
    private readonly SpecialTokenLayout _layout;

    private protected KilnTokenizer(
        TokenVocabulary vocabulary,
        LiteralTokenSplitter literals,
        SpecialTokenLayout layout,
        bool stripsLeadingSpace)
    {
        _vocabulary = vocabulary;
        _literals = literals;
        _layout = layout;
        StripsLeadingSpace = stripsLeadingSpace;
        int longest = vocabulary.MaxTokenBytes;
        for (int id = 0; id < vocabulary.Count; id++)
        {
            longest = Math.Max(longest, vocabulary.Text(id)?.Length ?? 0);
        }

        MaxTokenLength = longest;
    }

    /// <summary>
    /// Most characters of text one token stands for (the longest token's bytes or vocabulary text): a text of n
    /// characters has at least about n / this many tokens, which bounds a prompt's length before it is encoded.
    /// </summary>
    public int MaxTokenLength { get; }

    public int VocabSize => _vocabulary.Count;

    public int? BosTokenId => _layout.Bos;

    /// <summary>Every id that ends generation; the configured EOS comes first.</summary>
    public IReadOnlyList<int> EosTokenIds => _layout.Eos;

    public bool AddsBosByDefault => _layout.Bos is int bos && _layout.Prefix.Contains(bos);

    /// <summary>
    /// True for SentencePiece vocabularies: the encoder puts a "▁" in front of the text, so decoding
    /// drops one leading space of the output (Hugging Face's Strip/Metaspace decoder convention).
    /// </summary>
    public bool StripsLeadingSpace { get; }

    /// <summary>Encodes <paramref name="text"/>; literal special tokens in it become their single id.</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecialTokens">Whether to add what the post-processor adds (BOS, sometimes EOS).</param>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>((text.Length / 3) + 4);
        if (addSpecialTokens)
        {
            ids.AddRange(_layout.Prefix);
        }

        foreach (var segment in _literals.Split(text))
        {
            if (segment.TokenId >= 0)
            {
                ids.Add(segment.TokenId);
            }
            else if (segment.Length > 0)
            {
                EncodeText(text, segment.Start, segment.Length, ids);
            }
        }

        if (addSpecialTokens)
        {
            ids.AddRange(_layout.Suffix);
        }

        return ids;
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var total = 0;
        foreach (var id in ids)
        {
            if (!skipSpecialTokens || !_vocabulary.IsSpecial(id))
            {
                total += _vocabulary.Bytes(id).Length;
            }
        }

        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            var written = 0;
            var atStart = StripsLeadingSpace;
            foreach (var id in ids)
            {
                if (skipSpecialTokens && _vocabulary.IsSpecial(id))
                {
                    continue;
                }

                var bytes = StripLeadingSpace(_vocabulary.Bytes(id), ref atStart);
                bytes.CopyTo(buffer.AsSpan(written));
                written += bytes.Length;
            }

            return Encoding.UTF8.GetString(buffer, 0, written);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The exact bytes <paramref name="id"/> contributes to decoded output.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => _vocabulary.Bytes(id);

    /// <summary>
    /// A decoder that takes ids one at a time and returns text as soon as UTF-8 sequences complete.
    /// Streaming every id and then calling <see cref="StreamingDecoder.Flush"/> gives exactly
    /// <see cref="Decode"/> of those ids with the same <paramref name="skipSpecialTokens"/>.
    /// </summary>
    /// <param name="skipSpecialTokens">Whether special tokens produce no text.</param>
    /// <param name="continuesText">
    /// True when the ids continue text already shown (e.g. generation after a prompt): the
    /// SentencePiece leading-space strip is then not applied, so " time" stays " time".
    /// </param>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = true, bool continuesText = false) =>
        new(_vocabulary, skipSpecialTokens, StripsLeadingSpace && !continuesText);

    public bool IsSpecial(int id) => (uint)id < (uint)_vocabulary.Count && _vocabulary.IsSpecial(id);

    /// <summary>The raw vocabulary entry (e.g. "Ġthe", "▁the", "&lt;0x0A&gt;"), or null if none.</summary>
    public string? TokenText(int id) => (uint)id < (uint)_vocabulary.Count ? _vocabulary.Text(id) : null;

    /// <summary>Encodes plain text (no literal special tokens) and appends the ids.</summary>
    /// <param name="text">The whole input.</param>
    /// <param name="start">Start of the segment to encode; 0 means it begins the input.</param>
    /// <param name="length">Length of the segment.</param>
    /// <param name="output">Where the ids go.</param>
    private protected abstract void EncodeText(string text, int start, int length, List<int> output);

    internal static ReadOnlySpan<byte> StripLeadingSpace(ReadOnlySpan<byte> bytes, ref bool atStart)
    {
        if (!atStart || bytes.IsEmpty)
        {
            return bytes;
        }

        atStart = false;
        return bytes[0] == (byte)' ' ? bytes[1..] : bytes;
    }
}
