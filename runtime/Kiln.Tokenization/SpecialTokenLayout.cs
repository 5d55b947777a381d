namespace Kiln.Tokenization;

/// <summary>
/// Which ids a tokenizer treats as BOS/EOS and which ids its post-processor wraps around every
/// encoded text when special tokens are requested (e.g. Llama's leading &lt;s&gt;).
/// </summary>
internal sealed record SpecialTokenLayout(int? Bos, IReadOnlyList<int> Eos, int[] Prefix, int[] Suffix)
{
    public static SpecialTokenLayout Create(int? bos, IEnumerable<int> eos, bool addBos, bool addEos)
    {
        var eosList = eos.Distinct().ToArray();
        int[] prefix = addBos && bos is int b ? [b] : [];
        int[] suffix = addEos && eosList.Length > 0 ? [eosList[0]] : [];
        return new SpecialTokenLayout(bos, eosList, prefix, suffix);
    }
}
