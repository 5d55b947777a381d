using System.Text;
using LLama;
using LLama.Common;

namespace Kiln.Tests.Tokenization;

/// <summary>llama.cpp's own tokenizer (through LLamaSharp) as the reference for GGUF vocabularies.</summary>
internal static class LlamaCppReference
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, LLamaWeights> Loaded = new(StringComparer.Ordinal);

    /// <summary>Texts for comparing against llama.cpp; literal &lt;s&gt;/&lt;/s&gt;/&lt;unk&gt; included.</summary>
    public static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.",
        "Hello world",
        "  two  leading spaces and   three inside",
        "tabs\tand\nnewlines\r\n\n",
        "Lily's cat, Tom, said: \"hi!\" (and left)",
        "héllo wörld ñ русский العربية 日本語",
        "emoji 😀 family 👩‍👩‍👧‍👦 flag 🇺🇸",
        "<s>hi</s> there",
        "a<unk>b",
        "ends with special</s>",
        "tHe ThE the,the.the",
        "Shhh, the balllll went pooop and ppppp",
        "1234567890 + 3.14 = ?",
        " ",
        "",
    ];

    public static LLamaWeights Load(string path)
    {
        lock (Gate)
        {
            if (!Loaded.TryGetValue(path, out var weights))
            {
                weights = LLamaWeights.LoadFromFile(new ModelParams(path));
                Loaded[path] = weights;
            }

            return weights;
        }
    }

    /// <summary>llama_tokenize with special-token parsing on, as a chat prompt would be tokenized.</summary>
    public static int[] Tokenize(string path, string text, bool addBos)
    {
        var weights = Load(path);
        lock (Gate)
        {
            return [.. weights.Tokenize(text, addBos, special: true, Encoding.UTF8).Select(t => (int)t)];
        }
    }

    /// <summary>The bytes llama.cpp renders for one id (special tokens rendered as their text).</summary>
    public static byte[] Piece(string path, int id)
    {
        var weights = Load(path);
        Span<byte> buffer = stackalloc byte[256];
        lock (Gate)
        {
            var length = (int)weights.NativeHandle.TokenToSpan((LLama.Native.LLamaToken)id, buffer, 0, true);
            return buffer[..length].ToArray();
        }
    }
}
