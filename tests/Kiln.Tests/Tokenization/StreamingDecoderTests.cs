using Kiln.Tokenization;

namespace Kiln.Tests.Tokenization;

public sealed class StreamingDecoderTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void EmojiOverFourByteTokens_ComesOutWholeOnTheFourth()
    {
        var tokenizer = Tiny();
        var ids = tokenizer.Encode("hi 😀", addSpecialTokens: false); // ▁hi ▁ <0xF0> <0x9F> <0x98> <0x80>
        Assert.Equal(6, ids.Count);

        var decoder = tokenizer.CreateStreamingDecoder();
        Assert.Equal("hi", decoder.Append(ids[0]));
        Assert.Equal(" ", decoder.Append(ids[1]));
        Assert.Equal(string.Empty, decoder.Append(ids[2]));
        Assert.Equal(string.Empty, decoder.Append(ids[3]));
        Assert.Equal(string.Empty, decoder.Append(ids[4]));
        Assert.Equal("😀", decoder.Append(ids[5]));
        Assert.Equal(string.Empty, decoder.Flush());
    }

    [Fact]
    public void Flush_EmitsUnfinishedBytesAsReplacementLikeDecode()
    {
        var tokenizer = Tiny();
        int[] ids = [263, 3 + 0xF0, 3 + 0x9F]; // "▁hi" then half an emoji
        var decoder = tokenizer.CreateStreamingDecoder();
        var streamed = string.Concat(ids.Select(decoder.Append)) + decoder.Flush();

        Assert.Equal("hi\uFFFD", streamed);
        Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), streamed);
    }

    [Fact]
    public void SkipSpecialTokens_DropsThemButKeepsPendingBytes()
    {
        var tokenizer = Tiny();
        int[] ids = [1, 263, 3 + 0xC3, 2, 3 + 0xA9]; // <s> ▁hi <0xC3> </s> <0xA9>: "é" split by </s>

        var skipping = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        Assert.Equal("hié", string.Concat(ids.Select(skipping.Append)) + skipping.Flush());
        Assert.Equal("hié", tokenizer.Decode(ids, skipSpecialTokens: true));

        var keeping = tokenizer.CreateStreamingDecoder(skipSpecialTokens: false);
        var kept = string.Concat(ids.Select(keeping.Append)) + keeping.Flush();
        Assert.Equal(tokenizer.Decode(ids), kept);
        Assert.StartsWith("<s> hi\uFFFD</s>", kept, StringComparison.Ordinal);
    }

    [Fact]
    public void ContinuesText_KeepsTheFirstSpaceOfAContinuation()
    {
        var tokenizer = Tiny();
        var continuation = tokenizer.CreateStreamingDecoder(continuesText: true);
        Assert.Equal(" hi", continuation.Append(263));

        var fresh = tokenizer.CreateStreamingDecoder();
        Assert.Equal("hi", fresh.Append(263));
        Assert.Equal(" hi", fresh.Append(263));
    }

    [Fact]
    public void ByteLevel_SplitsMultiByteCharactersAcrossTokensCleanly()
    {
        var gpt2 = TokenizerLoader.CreateGpt2();

        // GPT-2 spells rare characters as several partial-UTF-8 tokens.
        foreach (var text in HardTexts.All)
        {
            var ids = gpt2.Encode(text);
            TokenizerAssert.StreamsLikeDecode(gpt2, ids, skipSpecialTokens: true);
        }

        var emoji = gpt2.Encode("👩‍👩‍👧‍👦");
        Assert.True(emoji.Count > 4);
        Assert.Contains(emoji, id => gpt2.TokenBytes(id).Length < 4 && gpt2.TokenBytes(id)[0] >= 0x80);
    }

    [Fact]
    public void Append_AllocatesNothingButTheReturnedText()
    {
        var tokenizer = Tiny();
        int[] ids = [263, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80];
        var warmUp = tokenizer.CreateStreamingDecoder();
        foreach (var id in ids)
        {
            warmUp.Append(id);
        }

        var decoder = tokenizer.CreateStreamingDecoder(continuesText: true);
        decoder.Append(ids[0]);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var partial = decoder.Append(ids[1]) + decoder.Append(ids[2]) + decoder.Append(ids[3]);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(string.Empty, partial);

        before = GC.GetAllocatedBytesForCurrentThread();
        var emoji = decoder.Append(ids[4]);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 1, 64); // one 2-char string
        Assert.Equal("😀", emoji);
    }

    [Fact]
    public void Append_RejectsUnknownIds()
    {
        var decoder = Tiny().CreateStreamingDecoder();
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Append(270));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Append(-1));
    }

    private KilnTokenizer Tiny() =>
        TokenizerLoader.FromHuggingFace(_directory.Write("tiny.json", TokenizerJsonFiles.TinySentencePiece()));
}
