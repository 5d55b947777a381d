using System.Text;
using Kiln.Tokenization;

namespace Kiln.Tests.Tokenization;

/// <summary>Checks shared by the tokenizer kinds: streaming decode agrees with batch decode.</summary>
internal static class TokenizerAssert
{
    /// <summary>
    /// Streams <paramref name="ids"/> one at a time and checks the pieces join to Decode, and that no
    /// piece splits a surrogate pair or contains U+FFFD (the input was valid text).
    /// </summary>
    public static void StreamsLikeDecode(KilnTokenizer tokenizer, IReadOnlyList<int> ids, bool skipSpecialTokens)
    {
        var decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens);
        var streamed = new StringBuilder();
        foreach (var id in ids)
        {
            var piece = decoder.Append(id);
            AssertWhole(piece);
            streamed.Append(piece);
        }

        var rest = decoder.Flush();
        AssertWhole(rest);
        streamed.Append(rest);
        Assert.Equal(tokenizer.Decode([.. ids], skipSpecialTokens), streamed.ToString());
    }

    private static void AssertWhole(string piece)
    {
        Assert.DoesNotContain('\uFFFD', piece);
        if (piece.Length > 0)
        {
            Assert.False(char.IsLowSurrogate(piece[0]), "piece starts with half a surrogate pair");
            Assert.False(char.IsHighSurrogate(piece[^1]), "piece ends with half a surrogate pair");
        }
    }
}
