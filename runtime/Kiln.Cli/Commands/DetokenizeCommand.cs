using System.CommandLine;

namespace Kiln.Cli.Commands;

/// <summary><c>kiln detokenize</c>: print the text of a list of token ids.</summary>
internal static class DetokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var ids = CommonOptions.Ids(required: true);
        var special = new Option<bool>("--special") { Description = "Print special tokens (BOS, EOS, ...) as their text too; by default they are left out." };
        var command = new Command("detokenize", "Print the text that token ids stand for.") { model, ids, special };
        command.SetAction(result =>
        {
            int[] tokens = CommonOptions.ParseIds(result.GetValue(ids)!);
            var (tokenizer, owner) = TokenizeCommand.LoadTokenizer(result.GetValue(model));
            using (owner)
            {
                Console.WriteLine(tokenizer.Decode(tokens, skipSpecialTokens: !result.GetValue(special)));
            }

            return 0;
        });
        return command;
    }
}
