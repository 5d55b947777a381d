using System.CommandLine;
using Kiln.Runtime.Generation;
using Kiln.Runtime.Sampling;

namespace Kiln.Cli.Commands;

/// <summary><c>kiln generate</c>: stream a completion of a prompt to stdout as it is produced.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = new Option<string>("--prompt", "-p") { Description = "The text to continue.", Required = true };
        var maxTokens = new Option<int>("--max-tokens") { Description = "How many tokens to generate at most.", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy.", DefaultValueFactory = _ => 0.8f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling: keep the most likely tokens up to this mass.", DefaultValueFactory = _ => 0.95f };
        var seed = new Option<ulong?>("--seed") { Description = "Seed for reproducible sampling." };
        var tp = CommonOptions.TensorParallel();
        var command = new Command("generate", "Generate text from a prompt, streamed as it is produced.")
        {
            model, prompt, maxTokens, temperature, topP, seed, tp,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var sampling = new SamplingParams
            {
                Temperature = result.GetValue(temperature),
                TopP = result.GetValue(topP),
                Seed = result.GetValue(seed),
            };
            sampling.Validate();
            int max = result.GetValue(maxTokens);
            if (max < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(maxTokens), max, "--max-tokens must be at least 1");
            }

            using var loaded = ModelSession.Load(result.GetValue(model), showProgress: true);
            var tokenizer = loaded.RequireTokenizer();
            var ids = new List<int>(tokenizer.Encode(result.GetValue(prompt)!, addSpecialTokens: true));
            if (ids.Count == 0 && loaded.BosTokenId is int bos)
            {
                ids.Add(bos);
            }

            using var generator = new Generator(loaded, maxContext: Math.Min(loaded.Config.MaxPositions, ids.Count + max), tensorParallelSize: result.GetValue(tp));
            using var stdout = Console.OpenStandardOutput();
            using var writer = new StreamWriter(stdout) { AutoFlush = true };
            writer.Write(result.GetValue(prompt));
            foreach (var token in generator.Generate(ids, max, sampling, stopAtEos: true, cancellationToken))
            {
                writer.Write(token.Text);
            }

            writer.WriteLine();
            return Task.FromResult(0);
        });
        return command;
    }
}
