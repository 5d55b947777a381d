using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using static Kiln.Tokenization.JsonReading;

namespace Kiln.Tokenization;

/// <summary>
/// Builds a <see cref="KilnTokenizer"/> from a Hugging Face tokenizer.json (+ tokenizer_config.json).
/// Only the BPE model is supported, in its byte-level (GPT-2/Llama 3/Qwen2) and SentencePiece
/// (Llama 2/TinyLlama, '▁' + byte_fallback) flavours; merges run in Microsoft.ML.Tokenizers'
/// BpeTokenizer, everything around them is Kiln's.
/// </summary>
internal static class HuggingFaceLoader
{
    private const int MaxJsonDepth = 256;

    private record struct AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip);

    public static KilnTokenizer Load(string tokenizerJsonPath, string? tokenizerConfigJsonPath)
    {
        var config = tokenizerConfigJsonPath is null ? HfTokenizerConfig.None : HfTokenizerConfig.Load(tokenizerConfigJsonPath);
        using var document = ParseJson(tokenizerJsonPath);
        try
        {
            return Build(document.RootElement, tokenizerJsonPath, config);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or ArgumentException)
        {
            throw Malformed(tokenizerJsonPath, e.Message, e);
        }
    }

    internal static JsonDocument ParseJson(string path)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = MaxJsonDepth });
        }
        catch (JsonException e)
        {
            throw Malformed(path, $"not valid JSON ({e.Message})", e);
        }
    }

    private static KilnTokenizer Build(JsonElement root, string source, HfTokenizerConfig config)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Malformed(source, "expected a JSON object.");
        }

        var model = Property(root, "model") ?? throw Malformed(source, "no 'model' section.");
        var type = String(model, "type", source) ?? (Property(model, "merges") is null ? "(none)" : "BPE");
        if (type != "BPE")
        {
            throw Malformed(source, $"tokenizer model type '{type}' is not supported (only BPE).");
        }

        if (!string.IsNullOrEmpty(String(model, "continuing_subword_prefix", source))
            || !string.IsNullOrEmpty(String(model, "end_of_word_suffix", source)))
        {
            throw Malformed(source, "BPE with continuing_subword_prefix/end_of_word_suffix is not supported.");
        }

        var vocab = ReadVocab(model, source);
        var merges = ReadMerges(model, source);
        var added = Array(root, "added_tokens", source).Select(t => ReadAddedToken(t, source)).ToList();
        var pipeline = HfPipeline.Parse(root, source);

        var byteLevel = pipeline.ByteLevel || pipeline.DecoderByteLevel;
        var byteFallback = Bool(model, "byte_fallback", source) ?? false;
        var sentencePiece = !byteLevel && (byteFallback || pipeline.HasMetaspaceNormalizer
            || pipeline.Metaspace is not null || pipeline.DecoderSentencePiece);
        if (!byteLevel && !sentencePiece)
        {
            throw Malformed(source, "BPE without a ByteLevel or SentencePiece ('▁'/byte_fallback) scheme is not supported.");
        }

        var replacement = pipeline.Metaspace?.Replacement ?? '▁';
        var vocabulary = BuildVocabulary(vocab, added, byteLevel, replacement);
        var literals = new LiteralTokenSplitter(added.Select(a => new LiteralToken(a.Content, a.Id, a.LStrip, a.RStrip)));
        var layout = BuildLayout(pipeline, config, vocab, added, source);

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab) { Merges = merges, ByteLevel = byteLevel });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw Malformed(source, $"BPE model rejected: {e.Message}", e);
        }

        var ignoreMerges = Bool(model, "ignore_merges", source) ?? false;
        var pieces = new LibraryBpePieceEncoder(bpe, vocab, byteLevel, ignoreMerges);
        if (byteLevel)
        {
            RequireByteAlphabet(vocab, source);
            return new ByteLevelBpeTokenizer(vocabulary, literals, layout, pipeline.Normalizer, pipeline.Splits, pipeline.AddPrefixSpace, pieces);
        }

        if (pipeline.Splits.Count > 0)
        {
            throw Malformed(source, "Split pre-tokenizers are only supported with ByteLevel.");
        }

        var unknown = String(model, "unk_token", source) is { } unk && vocab.TryGetValue(unk, out var unkId) ? unkId : (int?)null;
        int[]? byteIds = byteFallback ? ByteTokenIds(vocab) : null;
        return new SentencePieceBpeTokenizer(
            vocabulary, literals, layout, pipeline.DecoderStripsLeadingSpace, pipeline.Normalizer, pipeline.Metaspace,
            vocab, pieces, byteIds, unknown, Bool(model, "fuse_unk", source) ?? false);
    }

    private static Dictionary<string, int> ReadVocab(JsonElement model, string source)
    {
        var vocab = Property(model, "vocab") is { ValueKind: JsonValueKind.Object } v
            ? v : throw Malformed(source, "model.vocab must be an object.");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw Malformed(source, $"vocab entry '{entry.Name}' has no valid id.");
            }

            result[entry.Name] = id;
        }

        return result;
    }

    // Merges are "a b" strings (older files) or ["a", "b"] pairs; BpeOptions wants "a b".
    private static List<string> ReadMerges(JsonElement model, string source)
    {
        var merges = new List<string>();
        foreach (var merge in Array(model, "merges", source))
        {
            if (merge.ValueKind == JsonValueKind.String)
            {
                merges.Add(merge.GetString()!);
                continue;
            }

            var pair = merge.ValueKind == JsonValueKind.Array ? merge.EnumerateArray().Select(x => x.GetString()).ToArray() : [];
            if (pair.Length != 2 || pair[0] is not { } left || pair[1] is not { } right)
            {
                throw Malformed(source, "a merge must be \"a b\" or [\"a\", \"b\"].");
            }

            if (left.Contains(' ') || right.Contains(' '))
            {
                throw Malformed(source, $"merge parts containing spaces are not supported ('{left}', '{right}').");
            }

            merges.Add($"{left} {right}");
        }

        return merges;
    }

    private static AddedToken ReadAddedToken(JsonElement token, string source) => new(
        Int(token, "id", source) ?? throw Malformed(source, "added token without 'id'."),
        String(token, "content", source) ?? throw Malformed(source, "added token without 'content'."),
        Bool(token, "special", source) ?? false,
        Bool(token, "lstrip", source) ?? false,
        Bool(token, "rstrip", source) ?? false);

    private static TokenVocabulary BuildVocabulary(Dictionary<string, int> vocab, List<AddedToken> added, bool byteLevel, char replacement)
    {
        var count = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);
        var texts = new string?[count];
        var special = new bool[count];
        foreach (var (text, id) in vocab)
        {
            texts[id] = text;
        }

        foreach (var token in added)
        {
            texts[token.Id] = token.Content;
            special[token.Id] = token.Special;
        }

        var bytes = new byte[]?[count];
        for (var id = 0; id < count; id++)
        {
            if (texts[id] is { } text)
            {
                bytes[id] = byteLevel ? ByteLevelAlphabet.Decode(text) : SentencePieceBytes(text, replacement);
            }
        }

        return new TokenVocabulary(texts, bytes, special);
    }

    /// <summary>HF's Replace('▁', ' ') + ByteFallback decoders: "&lt;0xNN&gt;" is one raw byte.</summary>
    internal static byte[] SentencePieceBytes(string text, char replacement) =>
        ParseByteToken(text) is byte b ? [b] : Encoding.UTF8.GetBytes(text.Replace(replacement, ' '));

    internal static byte? ParseByteToken(string text) =>
        text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>'
            && byte.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b)
            ? b : null;

    private static int[] ByteTokenIds(Dictionary<string, int> vocab)
    {
        var ids = new int[256];
        for (var b = 0; b < 256; b++)
        {
            ids[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        }

        return ids;
    }

    // BpeTokenizer silently drops characters missing from the vocabulary; refuse such a vocabulary
    // instead (bytes that never occur in UTF-8 may be absent).
    private static void RequireByteAlphabet(Dictionary<string, int> vocab, string source)
    {
        for (var b = 0; b < 256; b++)
        {
            var neverInUtf8 = b is 0xC0 or 0xC1 or >= 0xF5;
            if (!neverInUtf8 && !vocab.ContainsKey(ByteLevelAlphabet.ToChar((byte)b).ToString()))
            {
                throw Malformed(source, $"byte-level vocabulary has no token for byte 0x{b:X2}.");
            }
        }
    }

    private static SpecialTokenLayout BuildLayout(
        HfPipeline pipeline, HfTokenizerConfig config, Dictionary<string, int> vocab, List<AddedToken> added, string source)
    {
        var specials = added.Where(a => a.Special).GroupBy(a => a.Content).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        int Resolve(string text, string key) =>
            added.FirstOrDefault(a => a.Content == text) is { Content: not null } a ? a.Id
            : vocab.TryGetValue(text, out var id) ? id
            : throw Malformed(config.Source, $"{key} '{text}' is not in the vocabulary of {source}.");

        var prefix = pipeline.Prefix.SelectMany(p => p.Ids).ToList();
        var suffix = pipeline.Suffix.SelectMany(p => p.Ids).ToList();

        int? bos = config.BosToken is { } bosText ? Resolve(bosText, "bos_token")
            : prefix.Count > 0 ? prefix[0]
            : KnownSpecialTokens.FindBos(specials);
        var eos = new List<int>();
        if (config.EosToken is { } eosText)
        {
            eos.Add(Resolve(eosText, "eos_token"));
        }

        eos.AddRange(suffix);
        eos.AddRange(specials.Where(s => KnownSpecialTokens.IsEndOfGeneration(s.Key)).Select(s => s.Value).Order());

        // tokenizer_config's add_bos_token/add_eos_token override the template, as transformers'
        // LlamaTokenizerFast rebuilds its post-processor from them.
        if (config.AddBos is bool addBos && bos is int b)
        {
            prefix.RemoveAll(id => id == b);
            if (addBos)
            {
                prefix.Insert(0, b);
            }
        }

        if (config.AddEos is bool addEos && eos.Count > 0)
        {
            suffix.RemoveAll(id => id == eos[0]);
            if (addEos)
            {
                suffix.Add(eos[0]);
            }
        }

        return new SpecialTokenLayout(bos, eos.Distinct().ToArray(), prefix.ToArray(), suffix.ToArray());
    }
}
