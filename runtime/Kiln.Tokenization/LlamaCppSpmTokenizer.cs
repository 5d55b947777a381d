using System.Text;

namespace Kiln.Tokenization;

/// <summary>
/// SentencePiece BPE for GGUF "llama" vocabularies, a line-by-line port of llama.cpp's
/// llm_tokenizer_spm: '▁' for spaces (and one in front of every text segment), then repeatedly
/// merge the adjacent pair whose concatenation is the highest-scoring vocabulary entry (ties: the
/// leftmost), and spell characters that never became a token as &lt;0xNN&gt; byte tokens.
/// Hand-written rather than feeding a synthesised ModelProto to LlamaTokenizer: the library follows
/// sentencepiece rules (which pieces may merge, unknown handling, special-token splitting) while
/// GGUF models are defined by llama.cpp's behaviour, which this reproduces by construction.
/// </summary>
internal sealed class LlamaCppSpmTokenizer : KilnTokenizer
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _tokenToId;
    private readonly float[] _scores;
    private readonly int[] _byteIds;
    private readonly int? _unknownId;
    private readonly bool _addSpacePrefix;

    /// <param name="vocabulary">Id bytes/texts/special flags.</param>
    /// <param name="literals">Control/user-defined tokens recognised verbatim.</param>
    /// <param name="layout">BOS/EOS and auto-added ids.</param>
    /// <param name="tokenToId">Text to id; on duplicates the highest id wins, as in llama.cpp.</param>
    /// <param name="scores">Merge score of every id.</param>
    /// <param name="byteIds">Id of &lt;0xNN&gt; for each byte, -1 if absent.</param>
    /// <param name="unknownId">Fallback when a byte token is missing.</param>
    /// <param name="addSpacePrefix">tokenizer.ggml.add_space_prefix.</param>
    public LlamaCppSpmTokenizer(
        TokenVocabulary vocabulary,
        LiteralTokenSplitter literals,
        SpecialTokenLayout layout,
        Dictionary<string, int> tokenToId,
        float[] scores,
        int[] byteIds,
        int? unknownId,
        bool addSpacePrefix)
        : base(vocabulary, literals, layout, stripsLeadingSpace: addSpacePrefix)
    {
        _tokenToId = tokenToId.GetAlternateLookup<ReadOnlySpan<char>>();
        _scores = scores;
        _byteIds = byteIds;
        _unknownId = unknownId;
        _addSpacePrefix = addSpacePrefix;
    }

    private protected override void EncodeText(string text, int start, int length, List<int> output)
    {
        // llama.cpp prefixes a space when the fragment is first or follows a special token, which
        // is every plain-text segment the splitter hands us.
        var prefix = _addSpacePrefix ? 1 : 0;
        var escaped = string.Create(length + prefix, (text, start, prefix), static (chars, s) =>
        {
            if (s.prefix == 1)
            {
                chars[0] = '▁';
            }

            s.text.AsSpan(s.start, chars.Length - s.prefix).Replace(chars[s.prefix..], ' ', '▁');
        });

        var symbols = new List<Symbol>(escaped.Length);
        for (var i = 0; i < escaped.Length;)
        {
            var width = char.IsHighSurrogate(escaped[i]) && i + 1 < escaped.Length && char.IsLowSurrogate(escaped[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol(i, width, symbols.Count - 1, i + width < escaped.Length ? symbols.Count + 1 : -1));
            i += width;
        }

        var queue = new PriorityQueue<Bigram, Bigram>(Bigram.Comparer);
        for (var i = 1; i < symbols.Count; i++)
        {
            TryAddBigram(escaped, symbols, queue, i - 1, i);
        }

        while (queue.TryDequeue(out var bigram, out _))
        {
            var left = symbols[bigram.Left];
            var right = symbols[bigram.Right];

            // Skip pairs whose symbols were merged away or grew since the pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != bigram.Length)
            {
                continue;
            }

            symbols[bigram.Left] = left with { Length = left.Length + right.Length, Next = right.Next };
            symbols[bigram.Right] = right with { Length = 0 };
            if (right.Next >= 0)
            {
                symbols[right.Next] = symbols[right.Next] with { Prev = bigram.Left };
            }

            TryAddBigram(escaped, symbols, queue, left.Prev, bigram.Left);
            TryAddBigram(escaped, symbols, queue, bigram.Left, right.Next);
        }

        for (var i = symbols.Count > 0 ? 0 : -1; i != -1; i = symbols[i].Next)
        {
            Resegment(escaped.AsSpan(symbols[i].Start, symbols[i].Length), output);
        }
    }

    private void TryAddBigram(string text, List<Symbol> symbols, PriorityQueue<Bigram, Bigram> queue, int left, int right)
    {
        if (left == -1 || right == -1)
        {
            return;
        }

        var length = symbols[left].Length + symbols[right].Length;
        if (_tokenToId.TryGetValue(text.AsSpan(symbols[left].Start, length), out var id))
        {
            var bigram = new Bigram(left, right, _scores[id], length);
            queue.Enqueue(bigram, bigram);
        }
    }

    // Every merged symbol is a vocabulary entry, so only never-merged characters can miss; llama.cpp's
    // rev_merge recursion is unreachable for them and is left out.
    private void Resegment(ReadOnlySpan<char> symbol, List<int> output)
    {
        if (_tokenToId.TryGetValue(symbol, out var id))
        {
            output.Add(id);
            return;
        }

        Span<byte> utf8 = stackalloc byte[8];
        var count = Encoding.UTF8.GetBytes(symbol, utf8);
        for (var b = 0; b < count; b++)
        {
            var byteId = _byteIds[utf8[b]];
            if (byteId >= 0)
            {
                output.Add(byteId);
            }
            else if (_unknownId is int unk)
            {
                output.Add(unk);
            }
        }
    }

    private readonly record struct Symbol(int Start, int Length, int Prev, int Next);

    private readonly record struct Bigram(int Left, int Right, float Score, int Length)
    {
        // llama.cpp's queue pops the highest score first and, among equal scores, the leftmost pair.
        public static readonly IComparer<Bigram> Comparer = Comparer<Bigram>.Create(static (a, b) =>
        {
            var byScore = b.Score.CompareTo(a.Score);
            return byScore != 0 ? byScore : a.Left.CompareTo(b.Left);
        });
    }
}
