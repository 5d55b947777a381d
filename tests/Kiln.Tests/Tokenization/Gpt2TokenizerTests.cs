using Kiln.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tests.Tokenization;

public class Gpt2TokenizerTests
{
    private static readonly KilnTokenizer Gpt2 = TokenizerLoader.CreateGpt2();
    private static readonly TiktokenTokenizer Reference = TiktokenTokenizer.CreateForModel("gpt2");

    [Fact]
    public void CreateGpt2_HasGpt2VocabularyAndEndOfText()
    {
        Assert.Equal(50257, Gpt2.VocabSize);
        Assert.Equal(50256, Gpt2.BosTokenId);
        Assert.Equal([50256], Gpt2.EosTokenIds);
        Assert.False(Gpt2.AddsBosByDefault);
        Assert.True(Gpt2.IsSpecial(50256));
        Assert.False(Gpt2.IsSpecial(198));
        Assert.Equal("<|endoftext|>", Gpt2.TokenText(50256));
        Assert.Equal("Ċ", Gpt2.TokenText(198)); // "\n" in GPT-2's byte alphabet
        Assert.Equal("\n"u8.ToArray(), Gpt2.TokenBytes(198).ToArray());
    }

    [Theory]
    [MemberData(nameof(HardTexts.CommonData), MemberType = typeof(HardTexts))]
    public void CreateGpt2_EncodesLikeTiktoken(string text)
    {
        Assert.Equal(Reference.EncodeToIds(text), Gpt2.Encode(text));
        Assert.Equal(Reference.EncodeToIds(text), Gpt2.Encode(text, addSpecialTokens: false));
    }

    [Fact]
    public void CreateGpt2_LiteralEndOfTextIsItsSpecialId()
    {
        const string text = "end.<|endoftext|>Next doc";
        var ids = Gpt2.Encode(text);

        Assert.Equal(Reference.EncodeToIds(text), ids);
        Assert.Single(ids, 50256);
        Assert.Equal(text, Gpt2.Decode([.. ids]));
        Assert.Equal("end.Next doc", Gpt2.Decode([.. ids], skipSpecialTokens: true));
    }

    [Fact]
    public void CreateGpt2_SplitsAstralLettersByCodePointLikePython()
    {
        // Python's regex sees 𝐀 as a letter; hand-split with GPT-2's pattern, then BPE each piece.
        Assert.Equal(Pieces("a𝐀b"), Gpt2.Encode("a𝐀b"));
        Assert.Equal(Pieces("𝐀𝐁𝐂", " math", " bold", " and", " 𝟙𝟚𝟛𝟜"), Gpt2.Encode("𝐀𝐁𝐂 math bold and 𝟙𝟚𝟛𝟜"));
        Assert.Equal(Pieces("x", "😀😀", "y"), Gpt2.Encode("x😀😀y"));
    }

    [Theory]
    [MemberData(nameof(HardTexts.AllData), MemberType = typeof(HardTexts))]
    public void CreateGpt2_RoundTripsAndStreams(string text)
    {
        var ids = Gpt2.Encode(text);
        Assert.Equal(text, Gpt2.Decode([.. ids]));
        TokenizerAssert.StreamsLikeDecode(Gpt2, ids, skipSpecialTokens: false);
    }

    private static int[] Pieces(params string[] pieces) =>
        [.. pieces.SelectMany(p => Reference.EncodeToIds(p, considerPreTokenization: false, considerNormalization: false))];
}
