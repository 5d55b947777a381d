using System.Text.Json.Nodes;

namespace Kiln.Tests.Tokenization;

/// <summary>
/// Writes tokenizer.json documents shaped like the ones Hugging Face ships, built from vocabularies
/// the tests know independently (GPT-2's ranks, the stories260K GGUF vocabulary, tiny hand-made ones).
/// </summary>
internal static class TokenizerJsonFiles
{
    public record struct Added(int Id, string Content, bool Special = true);

    /// <summary>GPT-2 exactly as HF ships it: ByteLevel pre-tokenizer with its built-in regex.</summary>
    public static JsonObject Gpt2() => ByteLevel(
        new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
        [new Added(Gpt2Reference.EndOfText, "<|endoftext|>")],
        bosTemplate: null,
        ignoreMerges: false);

    /// <summary>Llama 3's layout (Split regex + ByteLevel, BOS template, ignore_merges) over GPT-2's vocabulary.</summary>
    public static JsonObject Llama3Style(IReadOnlyList<Added> added, string bos) =>
        ByteLevel(Llama3PreTokenizer(), added, bos, ignoreMerges: true);

    /// <summary>Llama 3's pre_tokenizer: its Split regex, then ByteLevel without a regex of its own.</summary>
    public static JsonObject Llama3PreTokenizer() => new()
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(
            new JsonObject
            {
                ["type"] = "Split",
                ["pattern"] = new JsonObject { ["Regex"] = Gpt2Reference.Llama3Pattern },
                ["behavior"] = "Isolated",
                ["invert"] = false,
            },
            new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
    };

    /// <summary>
    /// A hand-checkable byte-level vocabulary: byte b is id b, plus merges that cross code-point
    /// boundaries, so ids reveal how text was pre-tokenized: 256 = F0 9F, 257 = +98, 258 = +80 (😀),
    /// 259 = 😀 + "h", 260 = 9B F0, 261 = "a" F0.
    /// </summary>
    public static JsonObject TinyByteLevel(bool llama3Split)
    {
        byte[][] extra = [[0xF0, 0x9F], [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x80], [0xF0, 0x9F, 0x98, 0x80, (byte)'h'], [0x9B, 0xF0], [(byte)'a', 0xF0]];
        int[] splitAt = [1, 2, 3, 4, 1, 1];
        var vocab = new JsonObject();
        for (var b = 0; b < 256; b++)
        {
            vocab[Gpt2Reference.ToByteLevel([(byte)b])] = b;
        }

        var merges = new List<JsonNode>();
        for (var i = 0; i < extra.Length; i++)
        {
            vocab[Gpt2Reference.ToByteLevel(extra[i])] = 256 + i;
            merges.Add(new JsonArray(Gpt2Reference.ToByteLevel(extra[i][..splitAt[i]]), Gpt2Reference.ToByteLevel(extra[i][splitAt[i]..])));
        }

        var root = Root([], null, null);
        root["normalizer"] = null;
        root["pre_tokenizer"] = llama3Split
            ? Llama3PreTokenizer()
            : new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        root["decoder"] = new JsonObject { ["type"] = "ByteLevel" };
        root["model"] = Model(vocab, merges, byteFallback: false, ignoreMerges: false, unk: null);
        return root;
    }

    /// <summary>
    /// Llama 2's tokenizer.json for a SentencePiece vocabulary, with merges generated the way
    /// transformers' SentencePieceExtractor does: every split of a piece into two vocabulary
    /// pieces, ordered by the piece's score (best first).
    /// </summary>
    public static JsonObject SentencePiece(string[] tokens, float[] scores, long[] types, bool metaspace)
    {
        var vocab = new JsonObject();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var id = 0; id < tokens.Length; id++)
        {
            vocab[tokens[id]] = id;
            ids[tokens[id]] = id;
        }

        var merges = new List<(string Left, string Right, float Score, int LeftId, int RightId)>();
        for (var id = 0; id < tokens.Length; id++)
        {
            var piece = tokens[id];
            if (types[id] != 1)
            {
                continue;
            }

            var cuts = Enumerable.Range(1, piece.Length - 1).Where(i => !char.IsLowSurrogate(piece[i]));
            foreach (var cut in cuts)
            {
                var (left, right) = (piece[..cut], piece[cut..]);
                if (ids.TryGetValue(left, out var l) && ids.TryGetValue(right, out var r))
                {
                    merges.Add((left, right, scores[id], l, r));
                }
            }
        }

        var ordered = merges.OrderByDescending(m => m.Score).ThenBy(m => m.LeftId).ThenBy(m => m.RightId);
        var added = Enumerable.Range(0, tokens.Length).Where(id => types[id] is 2 or 3).Select(id => new Added(id, tokens[id]));
        return SentencePiece(vocab, [.. ordered.Select(m => $"{m.Left} {m.Right}")], [.. added], "<s>", metaspace);
    }

    /// <summary>
    /// A hand-checkable Llama-2-style vocabulary: &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, the 256 byte tokens at
    /// 3..258 (so byte b is id 3 + b), then ▁=259 h=260 i=261 ▁h=262 ▁hi=263 e=264 l=265 o=266
    /// ll=267 ell=268 ▁hell=269, merged in that order.
    /// </summary>
    public static JsonObject TinySentencePiece(bool metaspace = false)
    {
        string[] pieces = ["<unk>", "<s>", "</s>", .. Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"),
            "▁", "h", "i", "▁h", "▁hi", "e", "l", "o", "ll", "ell", "▁hell"];
        var vocab = new JsonObject();
        for (var id = 0; id < pieces.Length; id++)
        {
            vocab[pieces[id]] = id;
        }

        string[] merges = ["▁ h", "▁h i", "l l", "e ll", "▁h ell"];
        return SentencePiece(vocab, merges, [new(0, "<unk>"), new(1, "<s>"), new(2, "</s>")], "<s>", metaspace);
    }

    public static JsonObject SentencePiece(JsonObject vocab, string[] merges, IReadOnlyList<Added> added, string? bos, bool metaspace)
    {
        var bosId = bos is null ? (int?)null : added.Single(a => a.Content == bos).Id;
        var root = Root(added, bos, bosId);
        var metaspaceNode = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false };
        root["normalizer"] = metaspace ? null : new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(
                new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
        };
        root["pre_tokenizer"] = metaspace ? metaspaceNode : null;
        root["decoder"] = metaspace ? metaspaceNode.DeepClone() : new JsonObject
        {
            ["type"] = "Sequence",
            ["decoders"] = new JsonArray(
                new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                new JsonObject { ["type"] = "ByteFallback" },
                new JsonObject { ["type"] = "Fuse" },
                new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
        };
        root["model"] = Model(vocab, merges, byteFallback: true, ignoreMerges: false, unk: "<unk>");
        return root;
    }

    private static JsonObject ByteLevel(JsonObject preTokenizer, IReadOnlyList<Added> added, string? bosTemplate, bool ignoreMerges)
    {
        var vocab = new JsonObject();
        var tokens = Gpt2Reference.Tokens;
        for (var id = 0; id < tokens.Length; id++)
        {
            vocab[tokens[id]] = id;
        }

        var bosId = bosTemplate is null ? (int?)null : added.Single(a => a.Content == bosTemplate).Id;
        var root = Root(added, bosTemplate, bosId);
        root["normalizer"] = null;
        root["pre_tokenizer"] = preTokenizer;
        root["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true };
        var merges = Gpt2Reference.Merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray();
        root["model"] = Model(vocab, merges, byteFallback: false, ignoreMerges, unk: null);
        return root;
    }

    private static JsonObject Root(IReadOnlyList<Added> added, string? bos, int? bosId)
    {
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. added.Select(a => (JsonNode)new JsonObject
            {
                ["id"] = a.Id,
                ["content"] = a.Content,
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = a.Special,
            })]),
        };
        root["post_processor"] = bos is null ? null : new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(
                new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            ["special_tokens"] = new JsonObject
            {
                [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) },
            },
        };
        return root;
    }

    private static JsonObject Model(JsonObject vocab, IEnumerable<JsonNode> merges, bool byteFallback, bool ignoreMerges, string? unk) => new()
    {
        ["type"] = "BPE",
        ["dropout"] = null,
        ["unk_token"] = unk,
        ["continuing_subword_prefix"] = null,
        ["end_of_word_suffix"] = null,
        ["fuse_unk"] = byteFallback,
        ["byte_fallback"] = byteFallback,
        ["ignore_merges"] = ignoreMerges,
        ["vocab"] = vocab,
        ["merges"] = new JsonArray([.. merges]),
    };

    private static JsonObject Model(JsonObject vocab, string[] merges, bool byteFallback, bool ignoreMerges, string? unk) =>
        Model(vocab, merges.Select(m => (JsonNode)JsonValue.Create(m)!), byteFallback, ignoreMerges, unk);
}
