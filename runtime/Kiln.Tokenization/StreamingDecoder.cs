using System.Text;

namespace Kiln.Tokenization;

/// <summary>
/// Turns ids into text one id at a time. Incomplete UTF-8 sequences (e.g. an emoji spread over four
/// byte-fallback tokens) stay buffered inside a <see cref="Decoder"/> until they complete, so no
/// broken character is ever emitted. Apart from the returned strings it does not allocate.
/// Not thread-safe: one decoder per generated sequence.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly TokenVocabulary _vocabulary;
    private readonly bool _skipSpecialTokens;
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();

    // A token's bytes plus up to 3 buffered bytes never produce more than bytes + 2 chars.
    private readonly char[] _chars;
    private bool _atStart;

    internal StreamingDecoder(TokenVocabulary vocabulary, bool skipSpecialTokens, bool stripLeadingSpace)
    {
        _vocabulary = vocabulary;
        _skipSpecialTokens = skipSpecialTokens;
        _atStart = stripLeadingSpace;
        _chars = new char[vocabulary.MaxTokenBytes + 4];

        // The decoder creates its fallback buffer lazily on the first incomplete sequence; do it
        // now so Append itself never allocates anything but its result.
        _ = _utf8.FallbackBuffer;
    }

    /// <summary>Adds one id and returns the text it completes (often empty mid-character).</summary>
    public string Append(int tokenId)
    {
        var bytes = _vocabulary.Bytes(tokenId);
        if (_skipSpecialTokens && _vocabulary.IsSpecial(tokenId))
        {
            return string.Empty;
        }

        bytes = KilnTokenizer.StripLeadingSpace(bytes, ref _atStart);
        var count = _utf8.GetChars(bytes, _chars, flush: false);
        return count == 0 ? string.Empty : new string(_chars, 0, count);
    }

    /// <summary>Emits whatever is still buffered; bytes that never completed become U+FFFD.</summary>
    public string Flush()
    {
        var count = _utf8.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        return count == 0 ? string.Empty : new string(_chars, 0, count);
    }
}
