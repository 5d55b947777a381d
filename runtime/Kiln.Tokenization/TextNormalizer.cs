using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.Tokenization;

/// <summary>
/// The subset of Hugging Face normalizers real BPE tokenizers use (Llama 2's Prepend + Replace,
/// Qwen2's NFC), applied in order to each text segment between literal special tokens.
/// </summary>
internal sealed class TextNormalizer
{
    private readonly Func<string, string>[] _steps;

    private TextNormalizer(Func<string, string>[] steps)
    {
        _steps = steps;
    }

    public static TextNormalizer None { get; } = new([]);

    public static TextNormalizer Of(IEnumerable<Func<string, string>> steps) => new(steps.ToArray());

    // HF's Prepend leaves an empty segment empty.
    public static Func<string, string> Prepend(string prefix) => s => s.Length == 0 ? s : prefix + s;

    public static Func<string, string> Replace(string pattern, string content) =>
        s => s.Replace(pattern, content, StringComparison.Ordinal);

    public static Func<string, string> ReplaceRegex(string pattern, string content)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        return s => regex.Replace(s, content.Replace("$", "$$", StringComparison.Ordinal));
    }

    /// <summary>
    /// NFC/NFKC/... via string.Normalize. Under InvariantGlobalization (as Kiln's apps run) .NET has
    /// no ICU and Normalize returns its input unchanged, so these steps only take effect in hosts with
    /// globalization; input that is already normalized (almost all text) is unaffected either way.
    /// </summary>
    public static Func<string, string> Unicode(NormalizationForm form) =>
        s => s.IsNormalized(form) ? s : s.Normalize(form);

    public static Func<string, string> Lowercase() => s => s.ToLowerInvariant();

    public string Apply(string text)
    {
        foreach (var step in _steps)
        {
            text = step(text);
        }

        return text;
    }
}
