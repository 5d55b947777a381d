using System.Text.Json;
using static Kiln.Tokenization.JsonReading;

namespace Kiln.Tokenization;

/// <summary>The parts of tokenizer_config.json that decide BOS/EOS and what Encode adds.</summary>
internal sealed record HfTokenizerConfig(string Source, string? BosToken, string? EosToken, bool? AddBos, bool? AddEos)
{
    public static HfTokenizerConfig None { get; } = new("(no tokenizer_config.json)", null, null, null, null);

    public static HfTokenizerConfig Load(string path)
    {
        using var document = HuggingFaceLoader.ParseJson(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Malformed(path, "expected a JSON object.");
        }

        return new HfTokenizerConfig(
            path,
            TokenContent(root, "bos_token", path),
            TokenContent(root, "eos_token", path),
            Bool(root, "add_bos_token", path),
            Bool(root, "add_eos_token", path));
    }
}
