using System.CommandLine;
using System.Text.Json;
using Kiln.Runtime.Generation;
using Kiln.Runtime.Sampling;

namespace Kiln.Cli.Commands;

/// <summary>
/// <c>kiln logits</c>: one line of JSON with the float32 logits at the last prompt position and N greedy tokens.
/// Ids are used exactly as given (no BOS added) and greedy decoding runs exactly N steps, ignoring EOS, so the output
/// can be compared with any reference implementation.
/// </summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var ids = CommonOptions.Ids(required: true);
        var greedy = CommonOptions.Int("--greedy", "How many tokens to choose greedily after the prompt.", 0, minimum: 0);
        var tp = CommonOptions.TensorParallel();
        var device = CommonOptions.Device();
        var command = new Command("logits", "Print {\"last_logits\":[...],\"greedy\":[...]} for a prompt of token ids.") { model, ids, greedy, tp, device };
        command.SetAction(result =>
        {
            int[] prompt = CommonOptions.ParseIds(result.GetValue(ids)!);
            int steps = result.GetValue(greedy);
            if (prompt.Length == 0 || steps < 0)
            {
                throw new ArgumentException("--ids needs at least one id and --greedy must be >= 0");
            }

            bool cuda = CudaCli.IsCuda(result.GetValue(device));
            if (cuda)
            {
                CudaCli.ThrowIfUnavailable();
            }

            using var loaded = ModelSession.Load(result.GetValue(model), showProgress: false);
            int maxContext = prompt.Length + steps;
            using var sequence = cuda ? CudaCli.CreateSequence(loaded, maxContext, result.GetValue(tp)) : null;
            using var generator = cuda ? null : new Generator(loaded, maxContext: maxContext, tensorParallelSize: result.GetValue(tp));
            float[] Prefill(int[] tokens, int start) => sequence?.Prefill(tokens, start) ?? generator!.Prefill(tokens, start).ToArray();
            float[] last = Prefill(prompt, 0);
            var chosen = new int[steps];
            var logits = last.AsSpan();
            for (int i = 0; i < steps; i++)
            {
                chosen[i] = Sampler.ArgMax(logits);
                logits = i + 1 < steps ? Prefill([chosen[i]], prompt.Length + i) : default;
            }

            using var stdout = Console.OpenStandardOutput();
            using (var json = new Utf8JsonWriter(stdout))
            {
                json.WriteStartObject();
                json.WriteStartArray("last_logits");
                foreach (float value in last)
                {
                    json.WriteNumberValue(value);
                }

                json.WriteEndArray();
                json.WriteStartArray("greedy");
                foreach (int id in chosen)
                {
                    json.WriteNumberValue(id);
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            stdout.Write("\n"u8);
            return 0;
        });
        return command;
    }
}
