using System.Globalization;

namespace Kiln.Runtime.Synthetic;

/// <summary>
/// A made-up SentencePiece ("llama") vocabulary: <c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, the 256 byte
/// tokens <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>, then single characters, prefixes of common English words
/// ("▁t", "▁th", "▁the", so that every piece is reachable by merges) and letter pairs and triples until full.
/// Deterministic: a given size always gives the same list.
/// </summary>
public static class SyntheticVocabulary
{
    public const int Unknown = 0;
    public const int Bos = 1;
    public const int Eos = 2;
    public const int FirstByteToken = 3;

    /// <summary>Specials, byte tokens and a few pieces.</summary>
    public const int MinimumSize = 3 + 256 + 16;

    // llama.cpp token types (llama_token_type): 1 normal, 2 unknown, 3 control, 6 byte.
    public const int TypeNormal = 1;
    public const int TypeUnknown = 2;
    public const int TypeControl = 3;
    public const int TypeByte = 6;

    private const string Space = "\u2581";

    private static readonly string[] Words =
    [
        "the", "and", "a", "was", "to", "he", "she", "it", "they", "of", "in", "said", "her", "his", "with", "day",
        "time", "once", "upon", "there", "little", "big", "happy", "play", "saw", "one", "very", "named", "girl",
        "boy", "mom", "dog", "cat", "tree", "ball", "friend", "fun", "wanted", "went", "had", "is", "you", "that",
        "for", "on", "but", "so", "not", "be", "we", "can", "all", "at", "do", "go", "up", "see", "like", "love",
        "sun", "park", "home", "Once", "The", "She", "He", "They", "Lily", "Tom",
    ];

    public static (string[] Tokens, float[] Scores, int[] Types) Build(int size)
    {
        if (size < MinimumSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a synthetic vocabulary needs at least {MinimumSize} tokens");
        }

        var tokens = new string[size];
        var scores = new float[size];
        var types = new int[size];
        tokens[Unknown] = "<unk>";
        types[Unknown] = TypeUnknown;
        tokens[Bos] = "<s>";
        types[Bos] = TypeControl;
        tokens[Eos] = "</s>";
        types[Eos] = TypeControl;
        for (int b = 0; b < 256; b++)
        {
            tokens[FirstByteToken + b] = string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");
            types[FirstByteToken + b] = TypeByte;
        }

        var seen = new HashSet<string>(tokens.Take(FirstByteToken + 256), StringComparer.Ordinal);
        int next = FirstByteToken + 256;
        using var pieces = Pieces().GetEnumerator();
        while (next < size && pieces.MoveNext())
        {
            if (seen.Add(pieces.Current))
            {
                tokens[next] = pieces.Current;
                scores[next] = -(next - FirstByteToken - 256);
                types[next] = TypeNormal;
                next++;
            }
        }

        return next == size ? (tokens, scores, types) : throw new ArgumentOutOfRangeException(nameof(size), size, "vocabulary too large for the synthetic generator");
    }

    private static IEnumerable<string> Pieces()
    {
        yield return Space;
        foreach (char c in ".,!?'\"-:;")
        {
            yield return c.ToString();
        }

        for (char c = 'a'; c <= 'z'; c++)
        {
            yield return c.ToString();
        }

        for (char c = 'A'; c <= 'Z'; c++)
        {
            yield return c.ToString();
        }

        for (char c = '0'; c <= '9'; c++)
        {
            yield return c.ToString();
        }

        foreach (string word in Words)
        {
            for (int length = 1; length <= word.Length; length++)
            {
                yield return Space + word[..length];
            }
        }

        foreach (string prefix in new[] { string.Empty, Space })
        {
            for (char a = 'a'; a <= 'z'; a++)
            {
                for (char b = 'a'; b <= 'z'; b++)
                {
                    yield return prefix + a + b;
                }
            }
        }

        for (int length = 3; length <= 5; length++)
        {
            foreach (string prefix in new[] { string.Empty, Space })
            {
                var letters = new char[length];
                for (long n = 0; n < (long)Math.Pow(26, length); n++)
                {
                    long v = n;
                    for (int i = length - 1; i >= 0; i--)
                    {
                        letters[i] = (char)('a' + (v % 26));
                        v /= 26;
                    }

                    yield return prefix + new string(letters);
                }
            }
        }
    }
}
