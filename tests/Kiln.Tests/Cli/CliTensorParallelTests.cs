using System.Text.Json;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Cli;

/// <summary>
/// <c>kiln logits --tp 1/2/4</c> as a user runs it, on a model with 2 KV heads: at --tp 4 each KV head is replicated
/// over two ranks (vLLM's rule), and the logits agree with one rank's within 1e-4, the greedy tokens exactly.
/// </summary>
public sealed class CliTensorParallelTests
{
    [Fact]
    public async Task LogitsAtTp1Tp2Tp4_OnTwoKvHeads_Agree()
    {
        using var file = new TempGguf(new RandomLlamaOptions { VocabSize = 300, Hidden = 128, Intermediate = 256, Layers = 2, Heads = 8, KvHeads = 2, Seed = 21 });
        var runs = new Dictionary<int, (float[] Logits, int[] Greedy)>();
        foreach (int tp in new[] { 1, 2, 4 })
        {
            var (exitCode, stdout, stderr) = await KilnProcess.RunAsync(["logits", "--model", file.Path, "--ids", "5,17,40,99,123,7", "--greedy", "4", "--tp", tp.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            Assert.True(exitCode == 0, $"--tp {tp} exited {exitCode}: {stderr}");
            using var json = JsonDocument.Parse(stdout);
            runs[tp] = ([.. json.RootElement.GetProperty("last_logits").EnumerateArray().Select(v => v.GetSingle())],
                [.. json.RootElement.GetProperty("greedy").EnumerateArray().Select(v => v.GetInt32())]);
        }

        Assert.Equal(300, runs[1].Logits.Length);
        foreach (int tp in new[] { 2, 4 })
        {
            double worst = runs[1].Logits.Zip(runs[tp].Logits, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst < 1e-4, $"--tp {tp}: max |logit difference| {worst:E2}");
            Assert.Equal(runs[1].Greedy, runs[tp].Greedy);
        }
    }
}
