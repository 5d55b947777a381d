using System.Text;

namespace Kiln.Tokenization;

/// <summary>
/// GPT-2's reversible byte-to-character map (bytes_to_unicode): byte-level BPE vocabularies store
/// every token as these printable characters, e.g. space is 'Ġ' and newline is 'Ċ'.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    public static char ToChar(byte value) => ByteToChar[value];

    /// <summary>
    /// The bytes a byte-level vocabulary entry stands for. Entries holding a character outside the
    /// alphabet (added tokens written as plain text) decode to their own UTF-8, exactly like
    /// Hugging Face's ByteLevel decoder.
    /// </summary>
    public static byte[] Decode(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            var c = token[i];
            var b = c < CharToByte.Length ? CharToByte[c] : (short)-1;
            if (b < 0)
            {
                return Encoding.UTF8.GetBytes(token);
            }

            bytes[i] = (byte)b;
        }

        return bytes;
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    private static short[] BuildCharToByte()
    {
        var inverse = new short[ByteToChar.Max() + 1];
        Array.Fill(inverse, (short)-1);
        for (var b = 0; b < 256; b++)
        {
            inverse[ByteToChar[b]] = (short)b;
        }

        return inverse;
    }
}
