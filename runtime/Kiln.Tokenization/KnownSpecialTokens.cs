namespace Kiln.Tokenization;

/// <summary>
/// Conventional spellings of BOS and end-of-generation tokens. Like llama.cpp, Kiln treats every
/// special token spelled as an end marker as an EOS (Llama 3's &lt;|eot_id|&gt; next to
/// &lt;|end_of_text|&gt;, Qwen's &lt;|im_end|&gt;), since chat models end turns with them.
/// </summary>
internal static class KnownSpecialTokens
{
    private static readonly HashSet<string> EndOfGenerationTexts = new(StringComparer.Ordinal)
    {
        "</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>",
        "<|im_end|>", "<|end|>", "<end_of_turn>", "<EOT>",
    };

    private static readonly string[] BeginOfSequenceTexts = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];

    public static bool IsEndOfGeneration(string text) => EndOfGenerationTexts.Contains(text);

    /// <summary>The first conventional BOS spelling among <paramref name="specialTokens"/>, if any.</summary>
    public static int? FindBos(IReadOnlyDictionary<string, int> specialTokens)
    {
        foreach (var text in BeginOfSequenceTexts)
        {
            if (specialTokens.TryGetValue(text, out var id))
            {
                return id;
            }
        }

        return null;
    }
}
