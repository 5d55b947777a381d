using System.CommandLine;
using Kiln.Bench.Common;
using Kiln.Kernels.Cuda.Model;

/// <summary>Command-line options of Kiln.Bench.Cuda.</summary>
internal sealed record Settings(string? Json, int Prefill, int Prompt, int NewTokens, int[] Batches, int Layers, bool Profile, bool GemvSweep, bool ComparePdl, bool CompareFused, bool CompareTuning, int LongPrompt, bool Engine, WeightFormat Weights)
{
    /// <summary>
    /// Reads the command line. Null when there is nothing to run: <c>--help</c> was asked for or the command line does not
    /// parse (both printed); <paramref name="exitCode"/> is then the process's exit code.
    /// </summary>
    public static Settings? Parse(string[] args, out int exitCode)
    {
        var json = new Option<string?>("--json") { Description = "Write the results to this file as JSON.", HelpName = "PATH" };
        var prefill = BenchCommandLine.Int("--prefill", "Tokens of the one-sequence prefill.", 512);
        var prompt = BenchCommandLine.Int("--prompt", "Prompt tokens of every sequence before decoding.", 128);
        var newTokens = BenchCommandLine.Int("--new-tokens", "Greedy decode steps of every sequence (the first is a warm-up).", 128);
        var batches = BenchCommandLine.IntList("--batches", "Decode batch sizes.", 1, 32, 128);
        var layers = BenchCommandLine.Int("--layers", "Transformer layers of the model.", 16);
        var profile = new Option<bool>("--profile") { Description = "Time one prefill and one decode step kernel by kernel." };
        var gemvSweep = new Option<bool>("--gemv-sweep") { Description = "Time the matrix-vector variants at the model's shapes." };
        var comparePdl = new Option<bool>("--compare-pdl") { Description = "Decode again without programmatic dependent launch." };
        var compareFused = new Option<bool>("--compare-fused") { Description = "Decode the batches of up to 8 again without the fused layers." };
        var compareTuning = new Option<bool>("--compare-tuning") { Description = "Decode the batches of up to 8 again with the default matrix-vector kernels instead of the warm-up trials' choices." };
        var longPrompt = BenchCommandLine.Int(
            "--long-prompt", "Also decode batches 1 and 8 after a prompt this long, with decode attention split over blocks and without (0: skip).", 0);
        var noEngine = new Option<bool>("--no-engine") { Description = "Skip the measurement through the engine." };
        var weights = new Option<string>("--weights")
        {
            Description = "How the random weights are kept: bf16, or q8 (int8 and a scale per 32 values, as a Q8_0 file is kept).",
            DefaultValueFactory = _ => "bf16",
        };
        weights.AcceptOnlyFromAmong("bf16", "q8");
        var root = new RootCommand(
            "Kiln's GPU benchmark: prefill and greedy decode of a Llama configuration with random weights, through the " +
            "CUDA runner (paged KV, CUDA graphs, device argmax), timed by the wall clock around synchronized steps.")
        {
            json, prefill, prompt, newTokens, batches, layers, profile, gemvSweep, comparePdl, compareFused, compareTuning, longPrompt, noEngine, weights,
        };
        Settings? settings = null;
        root.SetAction(result =>
        {
            settings = new Settings(
                result.GetValue(json),
                result.GetValue(prefill),
                result.GetValue(prompt),
                result.GetValue(newTokens),
                BenchCommandLine.Ints(result, batches),
                result.GetValue(layers),
                result.GetValue(profile),
                result.GetValue(gemvSweep),
                result.GetValue(comparePdl),
                result.GetValue(compareFused),
                result.GetValue(compareTuning),
                result.GetValue(longPrompt),
                !result.GetValue(noEngine),
                result.GetValue(weights) == "q8" ? WeightFormat.Q8 : WeightFormat.Bf16);
        });
        exitCode = BenchCommandLine.Invoke(root, args);
        return settings;
    }
}
