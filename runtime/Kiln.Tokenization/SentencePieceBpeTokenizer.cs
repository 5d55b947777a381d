using System.Text;

namespace Kiln.Tokenization;

/// <summary>How a Hugging Face Metaspace pre-tokenizer marks word starts.</summary>
/// <param name="Replacement">The space stand-in, normally '▁'.</param>
/// <param name="PrependAlways">prepend_scheme "always" (or legacy add_prefix_space).</param>
/// <param name="PrependFirst">prepend_scheme "first": only the segment that starts the input.</param>
/// <param name="Split">Whether each '▁' starts a new piece.</param>
internal sealed record MetaspaceSettings(char Replacement, bool PrependAlways, bool PrependFirst, bool Split);

/// <summary>
/// Hugging Face SentencePiece-style BPE (Llama 2, TinyLlama, Mistral, Gemma tokenizer.json): spaces
/// become '▁', the merge list runs over characters, and a character missing from the vocabulary
/// falls back to its UTF-8 bytes as &lt;0xNN&gt; tokens. BpeTokenizer does the merges but has no byte
/// fallback (it silently drops unknown characters), so we cut each word at unknown characters and
/// emit their byte tokens ourselves; merges never involve byte tokens, so the result is the same.
/// </summary>
internal sealed class SentencePieceBpeTokenizer : KilnTokenizer
{
    private readonly TextNormalizer _normalizer;
    private readonly MetaspaceSettings? _metaspace;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabulary;
    private readonly PieceEncoder _merges;
    private readonly int[]? _byteIds;
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;

    /// <param name="vocabulary">Id bytes/texts/special flags.</param>
    /// <param name="literals">Added/special tokens recognised verbatim.</param>
    /// <param name="layout">BOS/EOS and post-processor ids.</param>
    /// <param name="stripsLeadingSpace">Whether the decoder drops the first leading space.</param>
    /// <param name="normalizer">The tokenizer.json normalizer (Prepend/Replace for legacy Llama).</param>
    /// <param name="metaspace">The Metaspace pre-tokenizer, if any.</param>
    /// <param name="modelVocabulary">The BPE model's vocabulary.</param>
    /// <param name="merges">BPE over runs of known characters.</param>
    /// <param name="byteIds">Id of &lt;0xNN&gt; for each byte (-1 if absent), or null without byte_fallback.</param>
    /// <param name="unknownId">The unk id, used when a byte token is missing.</param>
    /// <param name="fuseUnknown">Consecutive unknown characters give one unk (HF fuse_unk).</param>
    public SentencePieceBpeTokenizer(
        TokenVocabulary vocabulary,
        LiteralTokenSplitter literals,
        SpecialTokenLayout layout,
        bool stripsLeadingSpace,
        TextNormalizer normalizer,
        MetaspaceSettings? metaspace,
        Dictionary<string, int> modelVocabulary,
        PieceEncoder merges,
        int[]? byteIds,
        int? unknownId,
        bool fuseUnknown)
        : base(vocabulary, literals, layout, stripsLeadingSpace)
    {
        _normalizer = normalizer;
        _metaspace = metaspace;
        _vocabulary = modelVocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _byteIds = byteIds;
        _unknownId = unknownId;
        _fuseUnknown = fuseUnknown;
    }

    private protected override void EncodeText(string text, int start, int length, List<int> output)
    {
        var segment = _normalizer.Apply(text.Substring(start, length));
        if (_metaspace is not { } meta)
        {
            EncodeWord(segment, output);
            return;
        }

        segment = segment.Replace(' ', meta.Replacement);
        var prepend = meta.PrependAlways || (meta.PrependFirst && start == 0);
        if (prepend && !segment.StartsWith(meta.Replacement))
        {
            segment = meta.Replacement + segment;
        }

        if (!meta.Split)
        {
            EncodeWord(segment, output);
            return;
        }

        // Split "MergedWithNext": every replacement character begins a new word.
        var wordStart = 0;
        for (var i = 1; i <= segment.Length; i++)
        {
            if (i == segment.Length || segment[i] == meta.Replacement)
            {
                EncodeWord(segment.AsSpan(wordStart, i - wordStart), output);
                wordStart = i;
            }
        }
    }

    private void EncodeWord(ReadOnlySpan<char> word, List<int> output)
    {
        var runStart = 0;
        var lastWasUnknown = false;
        var i = 0;
        while (i < word.Length)
        {
            var width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var character = word.Slice(i, width);
            if (_vocabulary.ContainsKey(character))
            {
                i += width;
                continue;
            }

            if (i > runStart)
            {
                _merges.Encode(word[runStart..i], output);
                lastWasUnknown = false;
            }

            if (TryBytes(character, output))
            {
                lastWasUnknown = false;
            }
            else if (_unknownId is int unk && !(_fuseUnknown && lastWasUnknown))
            {
                output.Add(unk);
                lastWasUnknown = true;
            }

            i += width;
            runStart = i;
        }

        if (word.Length > runStart)
        {
            _merges.Encode(word[runStart..], output);
        }
    }

    private bool TryBytes(ReadOnlySpan<char> character, List<int> output)
    {
        if (_byteIds is null)
        {
            return false;
        }

        Span<byte> utf8 = stackalloc byte[8];
        var count = Encoding.UTF8.GetBytes(character, utf8);
        for (var b = 0; b < count; b++)
        {
            if (_byteIds[utf8[b]] < 0)
            {
                return false;
            }
        }

        for (var b = 0; b < count; b++)
        {
            output.Add(_byteIds[utf8[b]]);
        }

        return true;
    }
}
