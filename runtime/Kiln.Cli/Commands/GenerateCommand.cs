using System.CommandLine;
using Kiln.Runtime.Engine;
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
        var maxTokens = CommonOptions.Int("--max-tokens", "How many tokens to generate at most.", 128, minimum: 1);
        var temperature = CommonOptions.Float("--temperature", "Sampling temperature; 0 is greedy.", 0.8f, 0, 2);
        var topP = CommonOptions.Float("--top-p", "Nucleus sampling: keep the most likely tokens up to this mass.", 0.95f, float.Epsilon, 1);
        var seed = new Option<ulong?>("--seed")
        {
            Description = "Seed for reproducible sampling.",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (ulong.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out ulong value))
                {
                    return value;
                }

                result.AddError($"--seed: '{text}' is not a non-negative integer");
                return null;
            },
        };
        var tp = CommonOptions.TensorParallel();
        var device = CommonOptions.Device();
        var command = new Command("generate", "Generate text from a prompt, streamed as it is produced.")
        {
            model, prompt, maxTokens, temperature, topP, seed, tp, device,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var sampling = new SamplingParams
            {
                Temperature = result.GetValue(temperature),
                TopP = result.GetValue(topP),
                Seed = result.GetValue(seed),
            };
            sampling.Validate();
            int max = result.GetValue(maxTokens);

            bool cuda = CudaCli.IsCuda(result.GetValue(device));
            if (cuda)
            {
                CudaCli.ThrowIfUnavailable();
            }

            using var loaded = ModelSession.Load(result.GetValue(model), showProgress: true);
            var tokenizer = loaded.RequireTokenizer();
            var ids = new List<int>(tokenizer.Encode(result.GetValue(prompt)!, addSpecialTokens: true));
            if (ids.Count == 0 && loaded.BosTokenId is int bos)
            {
                ids.Add(bos);
            }

            using var stdout = Console.OpenStandardOutput();
            using var writer = new StreamWriter(stdout) { AutoFlush = true };
            int maxContext = Math.Min(loaded.Config.MaxPositions, ids.Count + max);
            if (cuda)
            {
                using var engine = CudaCli.CreateEngine(loaded, maxContext, result.GetValue(tp));
                var request = new GenerationRequest { PromptTokenIds = ids, Sampling = sampling with { MaxTokens = max } };
                var events = engine.Submit(request, cancellationToken);
                writer.Write(result.GetValue(prompt));
                await foreach (var e in events.ConfigureAwait(false))
                {
                    writer.Write(e.Text);
                }
            }
            else
            {
                using var generator = new Generator(loaded, maxContext: maxContext, tensorParallelSize: result.GetValue(tp));
                writer.Write(result.GetValue(prompt));
                foreach (var token in generator.Generate(ids, max, sampling, stopAtEos: true, cancellationToken))
                {
                    writer.Write(token.Text);
                }
            }

            writer.WriteLine();
            return 0;
        });
        return command;
    }
}
