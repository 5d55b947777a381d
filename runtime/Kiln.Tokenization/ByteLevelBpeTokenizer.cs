namespace Kiln.Tokenization;

/// <summary>
/// Byte-level BPE (GPT-2, Llama 3, Qwen2): optional normalizer, regex pre-tokenization, then BPE of
/// each piece's UTF-8 bytes. Every byte has a token, so any text encodes without an unknown token.
/// </summary>
internal sealed class ByteLevelBpeTokenizer : KilnTokenizer
{
    private readonly TextNormalizer _normalizer;
    private readonly IReadOnlyList<PreTokenizerRegex> _splits;
    private readonly bool _addPrefixSpace;
    private readonly PieceEncoder _pieces;

    /// <param name="vocabulary">Id bytes/texts/special flags.</param>
    /// <param name="literals">Added/special tokens recognised verbatim.</param>
    /// <param name="layout">BOS/EOS and post-processor ids.</param>
    /// <param name="normalizer">Applied to each segment first.</param>
    /// <param name="splits">Regex splits applied one after another; empty means one piece.</param>
    /// <param name="addPrefixSpace">HF ByteLevel add_prefix_space: a segment gets a leading ' '.</param>
    /// <param name="pieces">The BPE itself.</param>
    public ByteLevelBpeTokenizer(
        TokenVocabulary vocabulary,
        LiteralTokenSplitter literals,
        SpecialTokenLayout layout,
        TextNormalizer normalizer,
        IReadOnlyList<PreTokenizerRegex> splits,
        bool addPrefixSpace,
        PieceEncoder pieces)
        : base(vocabulary, literals, layout, stripsLeadingSpace: false)
    {
        _normalizer = normalizer;
        _splits = splits;
        _addPrefixSpace = addPrefixSpace;
        _pieces = pieces;
    }

    private protected override void EncodeText(string text, int start, int length, List<int> output)
    {
        var segment = text.Substring(start, length);
        segment = _normalizer.Apply(segment);
        if (_addPrefixSpace && !segment.StartsWith(' '))
        {
            segment = " " + segment;
        }

        if (_splits.Count == 0)
        {
            _pieces.Encode(segment, output);
            return;
        }

        List<(int Start, int Length)> pieces = [(0, segment.Length)];
        foreach (var split in _splits)
        {
            var next = new List<(int Start, int Length)>(pieces.Count * 2);
            var sub = new List<(int Start, int Length)>();
            foreach (var (pieceStart, pieceLength) in pieces)
            {
                sub.Clear();
                split.Split(segment.AsSpan(pieceStart, pieceLength), sub);
                foreach (var (s, l) in sub)
                {
                    next.Add((pieceStart + s, l));
                }
            }

            pieces = next;
        }

        foreach (var (pieceStart, pieceLength) in pieces)
        {
            _pieces.Encode(segment.AsSpan(pieceStart, pieceLength), output);
        }
    }
}
