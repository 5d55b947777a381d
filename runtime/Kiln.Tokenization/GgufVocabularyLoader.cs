using System.Text;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tokenization;

/// <summary>
/// Builds a <see cref="KilnTokenizer"/> from the tokenizer.ggml.* metadata of a GGUF file, behaving
/// like llama.cpp: "llama" is SentencePiece BPE by score, "gpt2" is byte-level BPE by merge rank.
/// </summary>
internal static class GgufVocabularyLoader
{
    private const string ModelKey = "tokenizer.ggml.model";
    private const string TokensKey = "tokenizer.ggml.tokens";
    private const string ScoresKey = "tokenizer.ggml.scores";
    private const string TypesKey = "tokenizer.ggml.token_type";
    private const string MergesKey = "tokenizer.ggml.merges";
    private const string PreKey = "tokenizer.ggml.pre";

    // GGUF token types.
    private const long Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    public static KilnTokenizer Load(IReadOnlyDictionary<string, object> metadata, string sourceName)
    {
        var reader = new GgufMetadataReader(metadata, sourceName);
        var model = reader.Require<string>(ModelKey);
        var tokens = reader.Require<string[]>(TokensKey);
        var types = reader.OptionalRef<long[]>(TypesKey) ?? Enumerable.Repeat(Normal, tokens.Length).ToArray();
        reader.RequireLength(TypesKey, types.Length, tokens.Length);
        return model switch
        {
            "llama" => LoadSentencePiece(reader, tokens, types),
            "gpt2" => LoadByteLevel(reader, tokens, types),
            _ => throw reader.Error(ModelKey, $"tokenizer model '{model}' is not supported (llama, gpt2)."),
        };
    }

    private static LlamaCppSpmTokenizer LoadSentencePiece(GgufMetadataReader reader, string[] tokens, long[] types)
    {
        var scores = reader.RequireFloats(ScoresKey);
        reader.RequireLength(ScoresKey, scores.Length, tokens.Length);
        var tokenToId = TokenToId(tokens);

        var bytes = new byte[]?[tokens.Length];
        var byteIds = new int[256];
        Array.Fill(byteIds, -1);
        for (var id = 0; id < tokens.Length; id++)
        {
            var parsedByte = types[id] == Byte ? HuggingFaceLoader.ParseByteToken(tokens[id]) : null;
            if (parsedByte is byte b)
            {
                byteIds[b] = id;
            }

            bytes[id] = parsedByte is byte raw ? [raw]
                : types[id] is Normal or Unused ? Encoding.UTF8.GetBytes(tokens[id].Replace('▁', ' '))
                : Encoding.UTF8.GetBytes(tokens[id]);
        }

        // llama.cpp's SPM defaults when the ids are not in the file.
        var unknown = reader.OptionalId("tokenizer.ggml.unknown_token_id", tokens.Length) ?? DefaultId(tokens, 0);
        var bos = reader.OptionalId("tokenizer.ggml.bos_token_id", tokens.Length) ?? DefaultId(tokens, 1);
        var eos = reader.OptionalId("tokenizer.ggml.eos_token_id", tokens.Length) ?? DefaultId(tokens, 2);
        var layout = Layout(reader, tokens, types, bos, eos, addBosDefault: true);
        return new LlamaCppSpmTokenizer(
            new TokenVocabulary(tokens, bytes, SpecialFlags(types)),
            Literals(tokens, types),
            layout,
            tokenToId,
            scores,
            byteIds,
            unknown,
            reader.OptionalBool("tokenizer.ggml.add_space_prefix") ?? true);
    }

    private static ByteLevelBpeTokenizer LoadByteLevel(GgufMetadataReader reader, string[] tokens, long[] types)
    {
        var merges = reader.Require<string[]>(MergesKey);
        var pre = reader.OptionalRef<string>(PreKey) ?? "default";
        var (pattern, llama3) = pre switch
        {
            "default" or "gpt2" or "gpt-2" => (PreTokenizerRegex.Gpt2Pattern, false),
            "llama-bpe" or "llama3" or "llama-v3" => (PreTokenizerRegex.Llama3Pattern, true),
            "qwen2" => (PreTokenizerRegex.Qwen2Pattern, false),
            _ => throw reader.Error(PreKey, $"pre-tokenizer '{pre}' is not supported (default, gpt2, llama-bpe, qwen2)."),
        };

        var bytes = new byte[]?[tokens.Length];
        for (var id = 0; id < tokens.Length; id++)
        {
            // Normal tokens are stored in GPT-2's byte alphabet; control/user-defined ones as plain text.
            bytes[id] = types[id] is Normal or Byte or Unused ? ByteLevelAlphabet.Decode(tokens[id]) : Encoding.UTF8.GetBytes(tokens[id]);
        }

        var tokenToId = TokenToId(tokens);
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(tokenToId) { Merges = merges, ByteLevel = true });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw reader.Error(MergesKey, $"BPE model rejected: {e.Message}", e);
        }

        var bos = reader.OptionalId("tokenizer.ggml.bos_token_id", tokens.Length);
        var eos = reader.OptionalId("tokenizer.ggml.eos_token_id", tokens.Length);

        // llama.cpp adds BOS by default for the Llama 3 pre-tokenizer and ignores merges for it.
        var layout = Layout(reader, tokens, types, bos, eos, addBosDefault: llama3);
        return new ByteLevelBpeTokenizer(
            new TokenVocabulary(tokens, bytes, SpecialFlags(types)),
            Literals(tokens, types),
            layout,
            TextNormalizer.None,
            [new PreTokenizerRegex(pattern)],
            addPrefixSpace: false,
            new LibraryBpePieceEncoder(bpe, tokenToId, byteLevel: true, ignoreMerges: llama3));
    }

    private static SpecialTokenLayout Layout(
        GgufMetadataReader reader, string[] tokens, long[] types, int? bos, int? eos, bool addBosDefault)
    {
        var endIds = new List<int>();
        if (eos is int e)
        {
            endIds.Add(e);
        }

        foreach (var key in new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" })
        {
            if (reader.OptionalId(key, tokens.Length) is int id)
            {
                endIds.Add(id);
            }
        }

        for (var id = 0; id < tokens.Length; id++)
        {
            if (types[id] == Control && KnownSpecialTokens.IsEndOfGeneration(tokens[id]))
            {
                endIds.Add(id);
            }
        }

        var addBos = reader.OptionalBool("tokenizer.ggml.add_bos_token") ?? addBosDefault;
        var addEos = reader.OptionalBool("tokenizer.ggml.add_eos_token") ?? false;
        return SpecialTokenLayout.Create(bos, endIds, addBos, addEos && eos is not null);
    }

    // llama.cpp's token_to_id map: a later duplicate overwrites an earlier one.
    private static Dictionary<string, int> TokenToId(string[] tokens)
    {
        var map = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (var id = 0; id < tokens.Length; id++)
        {
            map[tokens[id]] = id;
        }

        return map;
    }

    private static bool[] SpecialFlags(long[] types) => types.Select(t => t is Unknown or Control or Unused).ToArray();

    // llama.cpp matches control, user-defined and unknown tokens verbatim in the text.
    private static LiteralTokenSplitter Literals(string[] tokens, long[] types) => new(
        Enumerable.Range(0, tokens.Length)
            .Where(id => types[id] is Control or UserDefined or Unknown)
            .Select(id => new LiteralToken(tokens[id], id)));

    private static int? DefaultId(string[] tokens, int id) => id < tokens.Length ? id : null;
}
