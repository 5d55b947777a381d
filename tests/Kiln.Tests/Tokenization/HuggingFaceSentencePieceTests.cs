using Kiln.Tokenization;

namespace Kiln.Tests.Tokenization;

public sealed class HuggingFaceSentencePieceTests : IDisposable
{
    private const int Bos = 1;
    private const int Eos = 2;
    private const int Space = 259;
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void TinyTokenizerJson_MergesByRankAndFallsBackToBytes()
    {
        var tokenizer = Tiny();

        // "▁hello": ▁+h, l+l, e+ll, ▁h+ell in merge-rank order, leaving "o".
        Assert.Equal([Bos, 269, 266], tokenizer.Encode("hello"));
        Assert.Equal([263], tokenizer.Encode("hi", addSpecialTokens: false));

        // 😀 is not in the vocabulary: its UTF-8 bytes F0 9F 98 80 become <0xNN> tokens (id 3 + byte).
        Assert.Equal([Bos, 263, Space, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80], tokenizer.Encode("hi 😀"));

        // Legacy Prepend puts "▁" in front of every segment, also after a literal special token.
        Assert.Equal([Bos, Bos, 263, Eos, 263], tokenizer.Encode("<s>hi</s>hi"));
        Assert.Equal([], tokenizer.Encode("", addSpecialTokens: false));
    }

    [Fact]
    public void TinyTokenizerJson_SpecialTokensAndLayout()
    {
        var tokenizer = Tiny();
        Assert.Equal(270, tokenizer.VocabSize);
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal([Eos], tokenizer.EosTokenIds);
        Assert.True(tokenizer.AddsBosByDefault);
        Assert.True(tokenizer.IsSpecial(0));
        Assert.False(tokenizer.IsSpecial(3 + 'A'));
        Assert.Equal("<0x41>", tokenizer.TokenText(3 + 'A'));
        Assert.Equal("A"u8.ToArray(), tokenizer.TokenBytes(3 + 'A').ToArray());
        Assert.Equal(" hell"u8.ToArray(), tokenizer.TokenBytes(269).ToArray());
    }

    [Fact]
    public void TinyTokenizerJson_DecodeDropsTheEncodersLeadingSpace()
    {
        var tokenizer = Tiny();
        Assert.Equal("hello hi", tokenizer.Decode([.. tokenizer.Encode("hello hi")], skipSpecialTokens: true));
        Assert.Equal(" hi", tokenizer.Decode([.. tokenizer.Encode(" hi")], skipSpecialTokens: true));

        // Like HF: with <s> kept, the strip hits "<s>" and the word keeps its space.
        Assert.Equal("<s> hello", tokenizer.Decode([Bos, 269, 266]));
    }

    [Fact]
    public void MetaspaceFirstScheme_PrependsOnlyAtTheStartOfTheInput()
    {
        var tokenizer = Tiny(metaspace: true);
        Assert.Equal([Bos, 263], tokenizer.Encode("hi"));

        // prepend_scheme "first": the segment after </s> does not start the input, so no "▁";
        // and a text already starting with a space gets no second "▁".
        Assert.Equal([Bos, 263, Eos, 260, 261], tokenizer.Encode("hi</s>hi"));
        Assert.Equal([Bos, 263], tokenizer.Encode(" hi"));
    }

    [Theory]
    [MemberData(nameof(HardTexts.AllData), MemberType = typeof(HardTexts))]
    public void TinyTokenizerJson_RoundTripsAndStreams(string text)
    {
        var tokenizer = Tiny();
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode([.. ids], skipSpecialTokens: true));
        TokenizerAssert.StreamsLikeDecode(tokenizer, ids, skipSpecialTokens: true);
        TokenizerAssert.StreamsLikeDecode(tokenizer, ids, skipSpecialTokens: false);
    }

    [Fact]
    public void Stories260KTokenizerJson_EncodesLikeLlamaCpp_NeedsSharedModels()
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var tokenizer = FromStories(path, metaspace: false);
        foreach (var text in LlamaCppReference.Texts.Concat(HardTexts.All))
        {
            Assert.Equal(LlamaCppReference.Tokenize(path, text, addBos: true), tokenizer.Encode(text));
            Assert.Equal(LlamaCppReference.Tokenize(path, text, addBos: false), tokenizer.Encode(text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void Stories260KMetaspaceTokenizerJson_EncodesLikeLlamaCppWithoutLiteralSpecials_NeedsSharedModels()
    {
        var path = SharedModels.Require(SharedModels.Stories260K);
        var tokenizer = FromStories(path, metaspace: true);
        foreach (var text in HardTexts.All.Where(t => !t.StartsWith(' ')))
        {
            Assert.Equal(LlamaCppReference.Tokenize(path, text, addBos: true), tokenizer.Encode(text));
        }
    }

    private KilnTokenizer Tiny(bool metaspace = false) =>
        TokenizerLoader.FromHuggingFace(_directory.Write($"tiny-{metaspace}.json", TokenizerJsonFiles.TinySentencePiece(metaspace)));

    private KilnTokenizer FromStories(string ggufPath, bool metaspace)
    {
        var metadata = TestGgufMetadata.Read(ggufPath);
        var json = TokenizerJsonFiles.SentencePiece(
            (string[])metadata["tokenizer.ggml.tokens"],
            (float[])metadata["tokenizer.ggml.scores"],
            (long[])metadata["tokenizer.ggml.token_type"],
            metaspace);
        return TokenizerLoader.FromHuggingFace(_directory.Write($"stories-{metaspace}.json", json));
    }
}
