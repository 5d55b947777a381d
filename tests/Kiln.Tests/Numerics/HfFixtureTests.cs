using System.Text.Json;
using Kiln.Runtime.Generation;
using Kiln.Runtime.Loading;

namespace Kiln.Tests.Numerics;

/// <summary>
/// A real transformers checkpoint (../shared/fixtures/hf-tiny-llama-gqa: bf16, rope_parameters block, GQA, untied)
/// against its reference.json, made by a float64 pass that agrees with transformers' LlamaForCausalLM to 6e-6
/// (see shared/fixtures/README.md).
/// </summary>
public class HfFixtureTests(ITestOutputHelper output)
{
    private const string FixtureName = "hf-tiny-llama-gqa";

    /// <summary>The README promises ~1e-4 for a correct float32 pass and greedy steps whose top two logits differ by more than 1e-3.</summary>
    private const double Tolerance = 1e-3;

    private sealed record FixtureCase(int[] Prompt, float[] LastLogits, int[] Greedy);

    [Fact]
    public void HfFixture_LogitsAndGreedyMatchTransformers_NeedsSharedFixtures()
    {
        string directory = FindFixture();
        var cases = ReadCases(Path.Combine(directory, "reference.json"));
        Assert.NotEmpty(cases);

        using var model = ModelLoader.Load(directory);
        Assert.Equal((4, 8, 2, 32, 1024, false), (model.Config.LayerCount, model.Config.HeadCount, model.Config.KvHeadCount, model.Config.HeadDim, model.Config.VocabSize, model.Config.TiedEmbeddings));

        int longest = cases.Max(c => c.Prompt.Length + c.Greedy.Length);
        using var generator = new Generator(model, maxContext: longest, prefillChunk: 64);
        double worst = 0;
        foreach (var c in cases)
        {
            // AllLogits runs the prompt in chunks of 64, so the 100-token prompt also crosses a chunk boundary.
            int vocab = model.Config.VocabSize;
            float[] last = generator.AllLogits(c.Prompt).AsSpan((c.Prompt.Length - 1) * vocab, vocab).ToArray();
            double diff = Diff.MaxAbs(last, c.LastLogits);
            worst = Math.Max(worst, diff);
            output.WriteLine($"prompt of {c.Prompt.Length} tokens: max |last logits - reference| = {diff:E2}");
            Assert.True(diff < Tolerance, $"prompt of {c.Prompt.Length} tokens: last logits differ from the reference by {diff:E3}");

            // EOS (id 2) is a legitimate greedy token here, so generation must not stop at it.
            int[] greedy = [.. generator.Generate(c.Prompt, c.Greedy.Length, Kiln.Runtime.Sampling.SamplingParams.Greedy, stopAtEos: false, TestContext.Current.CancellationToken).Select(t => t.Id)];
            Assert.Equal(c.Greedy, greedy);
        }

        output.WriteLine($"worst last-logit difference over {cases.Count} prompts: {worst:E2}");
    }

    /// <summary>The fixture under a <c>shared</c> folder found by walking up from the test binaries, or a skip that says where it looked.</summary>
    private static string FindFixture()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "fixtures", FixtureName);
            if (File.Exists(Path.Combine(candidate, "config.json")))
            {
                return candidate;
            }
        }

        Assert.Skip($"This test needs shared/fixtures/{FixtureName}/config.json in a directory above {AppContext.BaseDirectory} (the shared folder beside the repository); it was not found.");
        return string.Empty;
    }

    private static List<FixtureCase> ReadCases(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return [.. doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new FixtureCase(
            [.. c.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32())],
            [.. c.GetProperty("last_logits").EnumerateArray().Select(e => e.GetSingle())],
            [.. c.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32())]))];
    }
}
