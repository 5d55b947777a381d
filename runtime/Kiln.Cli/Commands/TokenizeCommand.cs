using System.CommandLine;
using System.Text.Json;
using Kiln.Runtime.Loading;
using Kiln.Tokenization;

namespace Kiln.Cli.Commands;

/// <summary><c>kiln tokenize</c> and the tokenizer lookup shared with <c>kiln detokenize</c>.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var text = new Option<string>("--text", "-t") { Description = "The text to encode.", Required = true };
        var command = new Command("tokenize", "Print {\"ids\":[...]}: the ids the model's own tokenizer gives (with the BOS its post-processor adds, if any).") { model, text };
        command.SetAction(result =>
        {
            var (tokenizer, owner) = LoadTokenizer(result.GetValue(model));
            using (owner)
            {
                var ids = tokenizer.Encode(result.GetValue(text)!, addSpecialTokens: true);
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, IReadOnlyList<int>> { ["ids"] = ids }));
            }

            return 0;
        });
        return command;
    }

    /// <summary>A directory with only tokenizer.json is enough; otherwise the whole model is loaded (memory-mapped, cheap).</summary>
    public static (KilnTokenizer Tokenizer, IDisposable? Owner) LoadTokenizer(string? path)
    {
        if (path is not null && Directory.Exists(path) && !File.Exists(Path.Combine(path, "config.json")))
        {
            var tokenizer = HuggingFaceLoader.LoadTokenizer(path)
                ?? throw new FileNotFoundException($"{path}: no tokenizer.json in this directory", Path.Combine(path, "tokenizer.json"));
            return (tokenizer, null);
        }

        var loaded = ModelLoader.Load(path);
        return (loaded.RequireTokenizer(), loaded);
    }
}
