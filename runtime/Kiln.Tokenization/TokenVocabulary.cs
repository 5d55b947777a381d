namespace Kiln.Tokenization;

/// <summary>
/// Per-id data every tokenizer kind shares: the exact bytes an id decodes to, its raw vocabulary
/// text and whether it is special. Bytes live in one flat array so decoding never allocates per token.
/// </summary>
internal sealed class TokenVocabulary
{
    private readonly byte[] _bytes;
    private readonly int[] _offsets;
    private readonly string?[] _texts;
    private readonly bool[] _special;

    public TokenVocabulary(string?[] texts, byte[]?[] bytes, bool[] special)
    {
        if (texts.Length != bytes.Length || texts.Length != special.Length)
        {
            throw new ArgumentException("Vocabulary arrays must have the same length.");
        }

        _texts = texts;
        _special = special;
        _offsets = new int[texts.Length + 1];
        var total = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            _offsets[i] = total;
            var length = bytes[i]?.Length ?? 0;
            total += length;
            MaxTokenBytes = Math.Max(MaxTokenBytes, length);
        }

        _offsets[texts.Length] = total;
        _bytes = new byte[total];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i]?.CopyTo(_bytes, _offsets[i]);
        }
    }

    public int Count => _texts.Length;

    /// <summary>Longest byte sequence of any single id; sizes the streaming decoder's scratch buffer.</summary>
    public int MaxTokenBytes { get; }

    public ReadOnlySpan<byte> Bytes(int id)
    {
        CheckId(id);
        return _bytes.AsSpan(_offsets[id], _offsets[id + 1] - _offsets[id]);
    }

    public string? Text(int id)
    {
        CheckId(id);
        return _texts[id];
    }

    public bool IsSpecial(int id)
    {
        CheckId(id);
        return _special[id];
    }

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)_texts.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id must be in [0, {_texts.Length}).");
        }
    }
}
