using System.Globalization;
using System.Text.RegularExpressions;

namespace Kiln.Tokenization;

/// <summary>
/// Splits text into pre-tokens with a GPT-2/Llama-3 style regex, matching on code points the way the
/// Rust/Python tokenizers do. .NET regexes see UTF-16 units, so "\p{L}" never matches an astral
/// letter and "[^\p{L}]?" can grab half an emoji; we therefore run the regex over a copy where each
/// astral code point becomes one BMP stand-in of the same Unicode category, then map offsets back.
/// </summary>
internal sealed class PreTokenizerRegex
{
    public const string Gpt2Pattern =
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public const string Qwen2Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly Regex _regex;

    public PreTokenizerRegex(string pattern)
    {
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    /// <summary>
    /// Appends the pieces of <paramref name="text"/> as (start, length) pairs covering all of it:
    /// matches and the gaps between them (Hugging Face's "Isolated" split behaviour).
    /// </summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            var end = 0;
            foreach (var match in _regex.EnumerateMatches(text))
            {
                AddWithGap(pieces, ref end, match.Index, match.Length);
            }

            AddGap(pieces, end, text.Length);
            return;
        }

        var shadow = new char[text.Length];
        var original = new int[text.Length + 1];
        var n = 0;
        for (var i = 0; i < text.Length; n++)
        {
            original[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                shadow[n] = StandIn(char.ConvertToUtf32(text[i], text[i + 1]));
                i += 2;
            }
            else
            {
                shadow[n] = text[i];
                i++;
            }
        }

        original[n] = text.Length;
        var last = 0;
        foreach (var match in _regex.EnumerateMatches(shadow.AsSpan(0, n)))
        {
            var start = original[match.Index];
            AddWithGap(pieces, ref last, start, original[match.Index + match.Length] - start);
        }

        AddGap(pieces, last, text.Length);
    }

    private static void AddWithGap(List<(int, int)> pieces, ref int end, int start, int length)
    {
        AddGap(pieces, end, start);
        if (length > 0)
        {
            pieces.Add((start, length));
        }

        end = start + length;
    }

    private static void AddGap(List<(int, int)> pieces, int from, int to)
    {
        if (to > from)
        {
            pieces.Add((from, to - from));
        }
    }

    /// <summary>A BMP character of the same general category; none of them are ASCII, so they
    /// cannot accidentally match literal characters of a pattern such as the "'s" contractions.</summary>
    private static char StandIn(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
    {
        UnicodeCategory.UppercaseLetter => '\u00C0',
        UnicodeCategory.LowercaseLetter => '\u00E0',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.SpaceSeparator => '\u2000',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00A8',
        UnicodeCategory.OtherSymbol => '\u00A9',
        _ => '\u0378',
    };
}
