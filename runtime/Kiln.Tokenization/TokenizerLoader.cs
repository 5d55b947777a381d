namespace Kiln.Tokenization;

/// <summary>Creates the tokenizer that belongs to a model.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// Loads a Hugging Face tokenizer.json (BPE: byte-level as in GPT-2/Llama 3/Qwen2, or
    /// SentencePiece-style with byte fallback as in Llama 2/TinyLlama).
    /// </summary>
    /// <param name="tokenizerJsonPath">Path of tokenizer.json.</param>
    /// <param name="tokenizerConfigJsonPath">Optional tokenizer_config.json for bos/eos and add_bos_token.</param>
    /// <exception cref="InvalidDataException">The file is malformed or uses an unsupported tokenizer type.</exception>
    public static KilnTokenizer FromHuggingFace(string tokenizerJsonPath, string? tokenizerConfigJsonPath = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJsonPath);
        return HuggingFaceLoader.Load(tokenizerJsonPath, tokenizerConfigJsonPath);
    }

    /// <summary>Builds the tokenizer stored in a GGUF file's tokenizer.ggml.* metadata.</summary>
    /// <param name="metadata">GGUF metadata: string, long, double, bool, or arrays of them (float[] for float32).</param>
    /// <param name="sourceName">Names the file in error messages.</param>
    /// <exception cref="InvalidDataException">A key is missing, has the wrong type or is inconsistent.</exception>
    public static KilnTokenizer FromGguf(IReadOnlyDictionary<string, object> metadata, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(sourceName);
        return GgufVocabularyLoader.Load(metadata, sourceName);
    }

    /// <summary>GPT-2's tokenizer (50257 ids, &lt;|endoftext|&gt; = 50256 is both BOS and EOS, no BOS added).</summary>
    public static KilnTokenizer CreateGpt2() => Gpt2Vocabulary.Create();
}
