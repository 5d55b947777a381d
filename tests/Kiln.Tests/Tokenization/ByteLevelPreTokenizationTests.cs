using System.Text;
using Kiln.Tokenization;

namespace Kiln.Tests.Tokenization;

/// <summary>
/// Pre-tokenization must follow Python/Rust regex semantics on code points. The tiny vocabulary has
/// merges across code-point boundaries, so the ids show exactly where the text was split.
/// </summary>
public sealed class ByteLevelPreTokenizationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Llama3Regex_TakesAWholeEmojiAsTheOptionalPrefixOfAWord()
    {
        // "[^\r\n\p{L}\p{N}]?\p{L}+" matches "😀hi" as one piece, so F0 9F 98 80 'h' merges to 259.
        Assert.Equal([259, 'i'], Tiny(llama3Split: true).Encode("😀hi"));
    }

    [Fact]
    public void Llama3Regex_CountsDigitsInCodePoints()
    {
        // "\p{N}{1,3}" gives "𝟙𝟚𝟛" and "𝟜": the 9B|F0 boundary between them must not merge (260).
        var ids = Tiny(llama3Split: true).Encode("𝟙𝟚𝟛𝟜");
        Assert.Equal(Encoding.UTF8.GetBytes("𝟙𝟚𝟛𝟜").Select(b => (int)b), ids);
    }

    [Fact]
    public void Gpt2Regex_KeepsAstralLettersInsideAWord()
    {
        var tokenizer = Tiny(llama3Split: false);

        // " ?\p{L}+" matches "a𝐀b" whole (𝐀 is a letter), so 'a' F0 merges to 261.
        Assert.Equal([261, 0x9D, 0x90, 0x80, 'b'], tokenizer.Encode("a𝐀b"));

        // An emoji is not a letter: "😀" and "hi" are separate pieces, so no 259.
        Assert.Equal([258, 'h', 'i'], tokenizer.Encode("😀hi"));
    }

    [Fact]
    public void TinyByteLevel_RoundTripsEverything()
    {
        var tokenizer = Tiny(llama3Split: true);
        foreach (var text in HardTexts.All)
        {
            var ids = tokenizer.Encode(text);
            Assert.Equal(text, tokenizer.Decode([.. ids]));
            TokenizerAssert.StreamsLikeDecode(tokenizer, ids, skipSpecialTokens: false);
        }
    }

    private KilnTokenizer Tiny(bool llama3Split) =>
        TokenizerLoader.FromHuggingFace(_directory.Write($"tiny-{llama3Split}.json", TokenizerJsonFiles.TinyByteLevel(llama3Split)));
}
