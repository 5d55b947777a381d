using Kiln.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tests.Tokenization;

public class GgufTokenizerTests
{
    private const string Source = "test.gguf";

    [Fact]
    public void Stories260K_EncodesLikeLlamaCpp_NeedsSharedModels()
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var tokenizer = TokenizerLoader.FromGguf(TestGgufMetadata.Read(path), path);
        foreach (var text in LlamaCppReference.Texts.Concat(HardTexts.All))
        {
            Assert.Equal(LlamaCppReference.Tokenize(path, text, addBos: true), tokenizer.Encode(text));
            Assert.Equal(LlamaCppReference.Tokenize(path, text, addBos: false), tokenizer.Encode(text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void Stories260K_TokenBytesMatchLlamaCpp_NeedsSharedModels()
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var tokenizer = TokenizerLoader.FromGguf(TestGgufMetadata.Read(path), path);
        for (var id = 0; id < tokenizer.VocabSize; id++)
        {
            Assert.Equal(LlamaCppReference.Piece(path, id), tokenizer.TokenBytes(id).ToArray());
        }
    }

    [Fact]
    public void Stories260K_SpecialTokens_NeedsSharedModels()
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var metadata = TestGgufMetadata.Read(path);
        var tokenizer = TokenizerLoader.FromGguf(metadata, path);
        var tokens = (string[])metadata["tokenizer.ggml.tokens"];

        Assert.Equal(tokens.Length, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenIds[0]);
        Assert.True(tokenizer.AddsBosByDefault);
        Assert.True(tokenizer.IsSpecial(1));
        Assert.False(tokenizer.IsSpecial(3)); // <0x00> is a byte token, not a special one
        Assert.Equal(tokens[300], tokenizer.TokenText(300));
    }

    [Theory]
    [MemberData(nameof(HardTexts.AllData), MemberType = typeof(HardTexts))]
    public void Stories260K_RoundTripsAndStreams_NeedsSharedModels(string text)
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var tokenizer = TokenizerLoader.FromGguf(TestGgufMetadata.Read(path), path);
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode([.. ids], skipSpecialTokens: true));
        TokenizerAssert.StreamsLikeDecode(tokenizer, ids, skipSpecialTokens: true);
    }

    [Fact]
    public void Gpt2Gguf_EncodesLikeTiktoken()
    {
        var tokenizer = TokenizerLoader.FromGguf(Gpt2Metadata(pre: null), Source);
        var reference = TiktokenTokenizer.CreateForModel("gpt2");

        Assert.False(tokenizer.AddsBosByDefault);
        Assert.Equal([Gpt2Reference.EndOfText], tokenizer.EosTokenIds);
        foreach (var text in HardTexts.Common.Append("a<|endoftext|>b"))
        {
            var ids = tokenizer.Encode(text);
            Assert.Equal(reference.EncodeToIds(text), ids);
            Assert.Equal(text, tokenizer.Decode([.. ids]));
        }
    }

    [Fact]
    public void LlamaBpeGguf_UsesLlama3RegexAndAddsBos()
    {
        var metadata = Gpt2Metadata(pre: "llama-bpe");
        var tokenizer = TokenizerLoader.FromGguf(metadata, Source);
        var reference = Gpt2Reference.Tiktoken(Gpt2Reference.Llama3Pattern, new Dictionary<string, int> { ["<|endoftext|>"] = Gpt2Reference.EndOfText });

        Assert.True(tokenizer.AddsBosByDefault);
        foreach (var text in HardTexts.Common)
        {
            var expected = reference.EncodeToIds(text);
            Assert.Equal(expected, tokenizer.Encode(text, addSpecialTokens: false));
            Assert.Equal([Gpt2Reference.EndOfText, .. expected], tokenizer.Encode(text));
            TokenizerAssert.StreamsLikeDecode(tokenizer, tokenizer.Encode(text), skipSpecialTokens: true);
        }
    }

    [Theory]
    [InlineData("tokenizer.ggml.model")]
    [InlineData("tokenizer.ggml.tokens")]
    [InlineData("tokenizer.ggml.scores")]
    public void MissingKey_ThrowsNamingSourceAndKey(string key)
    {
        var metadata = TinyLlamaMetadata();
        metadata.Remove(key);
        AssertInvalid(metadata, key);
    }

    [Fact]
    public void MissingMerges_ForGpt2Model_ThrowsNamingKey()
    {
        var metadata = TinyLlamaMetadata();
        metadata["tokenizer.ggml.model"] = "gpt2";
        AssertInvalid(metadata, "tokenizer.ggml.merges");
    }

    [Fact]
    public void InconsistentMetadata_ThrowsNamingSourceAndKey()
    {
        var shortScores = TinyLlamaMetadata();
        shortScores["tokenizer.ggml.scores"] = new float[2];
        AssertInvalid(shortScores, "tokenizer.ggml.scores");

        var wrongType = TinyLlamaMetadata();
        wrongType["tokenizer.ggml.tokens"] = new long[] { 1, 2 };
        AssertInvalid(wrongType, "tokenizer.ggml.tokens");

        var badBos = TinyLlamaMetadata();
        badBos["tokenizer.ggml.bos_token_id"] = 99L;
        AssertInvalid(badBos, "tokenizer.ggml.bos_token_id");

        var unknownModel = TinyLlamaMetadata();
        unknownModel["tokenizer.ggml.model"] = "bert";
        AssertInvalid(unknownModel, "tokenizer.ggml.model");

        var unknownPre = Gpt2Metadata(pre: "made-up");
        AssertInvalid(unknownPre, "tokenizer.ggml.pre");
    }

    [Fact]
    public void TinyLlamaMetadata_MergesByScoreAndHonoursAddBos()
    {
        var metadata = TinyLlamaMetadata();
        var tokenizer = TokenizerLoader.FromGguf(metadata, Source);

        // "▁ab": ▁a (score -1) beats ab (score -2), then ▁a+b is not a token: [▁a, b].
        Assert.Equal([1, 7, 5], tokenizer.Encode("ab"));

        metadata["tokenizer.ggml.add_bos_token"] = false;
        Assert.Equal([7, 5], TokenizerLoader.FromGguf(metadata, Source).Encode("ab"));
    }

    private static void AssertInvalid(Dictionary<string, object> metadata, string key)
    {
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromGguf(metadata, Source));
        Assert.Contains(Source, error.Message, StringComparison.Ordinal);
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    private static Dictionary<string, object> TinyLlamaMetadata() => new()
    {
        ["tokenizer.ggml.model"] = "llama",
        ["tokenizer.ggml.tokens"] = new[] { "<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁a" },
        ["tokenizer.ggml.scores"] = new float[] { 0, 0, 0, -5, -6, -7, -2, -1 },
        ["tokenizer.ggml.token_type"] = new long[] { 2, 3, 3, 1, 1, 1, 1, 1 },
        ["tokenizer.ggml.bos_token_id"] = 1L,
        ["tokenizer.ggml.eos_token_id"] = 2L,
    };

    /// <summary>GPT-2's vocabulary as a "gpt2" GGUF tokenizer, from the Data.Gpt2 ranks.</summary>
    private static Dictionary<string, object> Gpt2Metadata(string? pre)
    {
        string[] tokens = [.. Gpt2Reference.Tokens, "<|endoftext|>"];
        var types = tokens.Select((_, id) => id == Gpt2Reference.EndOfText ? 3L : 1L).ToArray();
        var metadata = new Dictionary<string, object>
        {
            ["tokenizer.ggml.model"] = "gpt2",
            ["tokenizer.ggml.tokens"] = tokens,
            ["tokenizer.ggml.token_type"] = types,
            ["tokenizer.ggml.merges"] = Gpt2Reference.Merges.Select(m => $"{m.Left} {m.Right}").ToArray(),
            ["tokenizer.ggml.bos_token_id"] = (long)Gpt2Reference.EndOfText,
            ["tokenizer.ggml.eos_token_id"] = (long)Gpt2Reference.EndOfText,
        };
        if (pre is not null)
        {
            metadata["tokenizer.ggml.pre"] = pre;
        }

        return metadata;
    }
}
