using Kiln.Tokenization;
using static Kiln.Tests.Tokenization.TokenizerJsonFiles;

namespace Kiln.Tests.Tokenization;

/// <summary>GPT-2-vocabulary tokenizer.json files, written and loaded once per test class.</summary>
public sealed class ByteLevelJsonFixture : IDisposable
{
    internal static readonly Added[] Llama3Specials =
    [
        new(50257, "<|begin_of_text|>"),
        new(50258, "<|end_of_text|>"),
        new(50259, "<|start_header_id|>"),
        new(50260, "<|end_header_id|>"),
        new(50261, "<|eot_id|>"),
    ];

    private readonly TempDirectory _directory = new();
    private readonly Lazy<KilnTokenizer> _gpt2;
    private readonly Lazy<string> _llama3Path;
    private readonly Lazy<KilnTokenizer> _llama3;

    public ByteLevelJsonFixture()
    {
        _gpt2 = new(() => TokenizerLoader.FromHuggingFace(_directory.Write("gpt2.json", Gpt2())));
        _llama3Path = new(() => _directory.Write("llama3.json", Llama3Style(Llama3Specials, "<|begin_of_text|>")));
        _llama3 = new(() => TokenizerLoader.FromHuggingFace(_llama3Path.Value));
    }

    internal KilnTokenizer Gpt2Json => _gpt2.Value;

    /// <summary>Llama 3's tokenizer.json layout over GPT-2's vocabulary plus Llama 3's special tokens.</summary>
    internal KilnTokenizer Llama3Json => _llama3.Value;

    public string Llama3JsonPath => _llama3Path.Value;

    public string WriteConfig(string name, string json) => _directory.Write(name, json);

    public string WriteTokenizer(string name, System.Text.Json.Nodes.JsonNode json) => _directory.Write(name, json);

    public void Dispose() => _directory.Dispose();
}
