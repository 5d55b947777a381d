namespace Kiln.Tests.Tokenization;

/// <summary>Inputs that stress tokenizers: many scripts, emoji sequences, whitespace runs.</summary>
internal static class HardTexts
{
    /// <summary>
    /// Texts on which a UTF-16 regex and a code-point regex split alike, so the library's own
    /// TiktokenTokenizer (which matches on UTF-16) is a valid reference for them.
    /// </summary>
    public static readonly string[] Common =
    [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "  leading and trailing spaces  ",
        "tabs\tand\t\tmore\ttabs",
        "line one\nline two\r\n\r\nline four\n\n\n",
        "multiple     spaces   between",
        "héllo wörld — naïve café",
        "日本語のテキストと漢字",
        "한국어 텍스트",
        "Русский текст, ёлка",
        "العربية من اليمين",
        "हिन्दी पाठ",
        "emoji 😀 and 👍🏽 skin tone",
        "family 👩‍👩‍👧‍👦 ZWJ and flags 🇺🇸🇯🇵",
        "I'm sure they've said we'll DON'T",
        "numbers 1234567890 3.14159 1,000,000",
        "code: if (x != y) { return a[i] * 2; } // done",
        "\u00a0non-breaking\u2003em space",
        " ",
        "",
    ];

    /// <summary>Astral letters/digits: only a code-point-aware pre-tokenizer splits these like Python.</summary>
    public static readonly string[] Astral = ["𝐀𝐁𝐂 math bold and 𝟙𝟚𝟛𝟜", "a𝐀b", "😀hello", "x😀😀y"];

    public static IEnumerable<string> All => Common.Concat(Astral);

    public static TheoryData<string> CommonData() => new(Common);

    public static TheoryData<string> AllData() => new(All);
}
