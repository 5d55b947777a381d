namespace Kiln.Tokenization;

/// <summary>One literal token the encoder must recognise verbatim in input text.</summary>
/// <param name="Content">The exact text, e.g. "&lt;|eot_id|&gt;".</param>
/// <param name="Id">Its id.</param>
/// <param name="LStrip">Whitespace just before the match is swallowed (HF AddedToken.lstrip).</param>
/// <param name="RStrip">Whitespace just after the match is swallowed (HF AddedToken.rstrip).</param>
internal readonly record struct LiteralToken(string Content, int Id, bool LStrip = false, bool RStrip = false);

/// <summary>A piece of input: either plain text (<see cref="TokenId"/> &lt; 0) or one literal token.</summary>
internal readonly record struct TextSegment(int Start, int Length, int TokenId);

/// <summary>
/// Cuts input text at literal special/added tokens before any normalisation, as Hugging Face's
/// AddedVocabulary and llama.cpp's special-token partition do. Matching is leftmost-longest.
/// </summary>
internal sealed class LiteralTokenSplitter
{
    private readonly Dictionary<char, LiteralToken[]> _byFirstChar;

    public LiteralTokenSplitter(IEnumerable<LiteralToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(
                g => g.Key,
                g => g.OrderByDescending(t => t.Content.Length).ThenBy(t => t.Id).ToArray());
    }

    public List<TextSegment> Split(string text)
    {
        var segments = new List<TextSegment>(4);
        if (_byFirstChar.Count == 0)
        {
            segments.Add(new TextSegment(0, text.Length, -1));
            return segments;
        }

        var segmentStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            if (!_byFirstChar.TryGetValue(text[i], out var candidates)
                || Match(text, i, candidates) is not LiteralToken token)
            {
                i++;
                continue;
            }

            var textEnd = i;
            if (token.LStrip)
            {
                while (textEnd > segmentStart && char.IsWhiteSpace(text[textEnd - 1]))
                {
                    textEnd--;
                }
            }

            if (textEnd > segmentStart)
            {
                segments.Add(new TextSegment(segmentStart, textEnd - segmentStart, -1));
            }

            segments.Add(new TextSegment(i, token.Content.Length, token.Id));
            i += token.Content.Length;
            if (token.RStrip)
            {
                while (i < text.Length && char.IsWhiteSpace(text[i]))
                {
                    i++;
                }
            }

            segmentStart = i;
        }

        if (segmentStart < text.Length)
        {
            segments.Add(new TextSegment(segmentStart, text.Length - segmentStart, -1));
        }

        return segments;
    }

    private static LiteralToken? Match(string text, int index, LiteralToken[] candidates)
    {
        var rest = text.AsSpan(index);
        foreach (var candidate in candidates)
        {
            if (rest.StartsWith(candidate.Content, StringComparison.Ordinal))
            {
                return candidate;
            }
        }

        return null;
    }
}
