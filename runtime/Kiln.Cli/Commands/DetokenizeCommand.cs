using System.CommandLine;

namespace Kiln.Cli.Commands;

/// <summary><c>kiln detokenize</c>: print the text of a list of token ids.</summary>
internal static class DetokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var ids = CommonOptions.Ids(required: true);
        var command = new Command("detokenize", "Print the text that token ids stand for.") { model, ids };
        command.SetAction(result =>
        {
            int[] tokens = CommonOptions.ParseIds(result.GetValue(ids)!);
            var (tokenizer, owner) = TokenizeCommand.LoadTokenizer(result.GetValue(model));
            using (owner)
            {
                Console.WriteLine(tokenizer.Decode(tokens));
            }

            return 0;
        });
        return command;
    }
}
