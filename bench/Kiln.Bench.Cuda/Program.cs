using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;

// Kiln's GPU benchmark: prefill and greedy decode of a Llama configuration with random bf16 weights, through the
// CUDA runner (paged KV, CUDA graphs, device argmax), timed by the wall clock around synchronized steps.
// Options: Kiln.Bench.Cuda --help (Settings.cs).
if (Settings.Parse(args, out int exitCode) is not { } settings)
{
    return exitCode;
}

if (CudaDevice.UnavailableReason() is { } missing)
{
    Console.Error.WriteLine($"no GPU: {missing}");
    return 2;
}

var config = new ModelConfig
{
    Architecture = "llama",
    VocabSize = 128256,
    HiddenSize = 2048,
    IntermediateSize = 8192,
    LayerCount = settings.Layers,
    HeadCount = 32,
    KvHeadCount = 8,
    HeadDim = 64,
    MaxPositions = 4096,
    RopeTheta = 500000,
    RmsNormEps = 1e-5,
    TiedEmbeddings = true,
};
int longBatch = settings.LongPrompt > 0 ? 8 : 0; // the long-context decodes run at batches 1 and 8
int maxBatch = Math.Max(settings.Batches.Max(), longBatch);
using var runner = CudaModelRunner.CreateRandom(config, new CudaRunnerOptions { MaxBatchTokens = Math.Max(settings.Prefill, 2048), MaxLogitRows = Math.Max(maxBatch, 1) }, seed: 1, settings.Weights);
Console.WriteLine($"device: {runner.Gpu}; weights {runner.Weights.Bytes / 1e9:F2} GB; kernels {(runner.Kernels.FromCache ? "read from cache" : "compiled")} in {runner.Kernels.CompileTime.TotalMilliseconds:F0} ms");
using (var again = new KernelModule(runner.Gpu, config.HeadDim, null, runner.Kernels.GqaGroup, runner.Kernels.WeightFormats))
{
    Console.WriteLine($"kernel module again (warm restart): {(again.FromCache ? "from cache" : "compiled")} in {again.CompileTime.TotalMilliseconds:F1} ms");
}

if (settings.GemvSweep)
{
    (int, int)[] shapes = [(config.QueryDim + (2 * config.KvDim), config.HiddenSize), (config.HiddenSize, config.QueryDim),
        (2 * config.IntermediateSize, config.HiddenSize), (config.HiddenSize, config.IntermediateSize), (config.VocabSize, config.HiddenSize)];
    GemvSweep.Run(runner.Gpu, runner.Kernels, runner.Stream, shapes, tokens: 1);
    GemvSweep.Run(runner.Gpu, runner.Kernels, runner.Stream, shapes, tokens: 8);
}

const int BlockSize = 16;
int longest = Math.Max(settings.Prefill, Math.Max(settings.Prompt, settings.LongPrompt) + settings.NewTokens);
int blocksPerSequence = ((longest + BlockSize - 1) / BlockSize) + 1;
using var cache = (CudaKvCache)runner.CreateKvCache(maxBatch * blocksPerSequence, BlockSize, maxBatch, blocksPerSequence);
var tables = new int[maxBatch * blocksPerSequence];
for (int i = 0; i < tables.Length; i++)
{
    tables[i] = i; // sequence s owns blocks s * blocksPerSequence ...
}

var results = new Dictionary<string, object> { ["device"] = runner.Gpu.Name, ["layers"] = config.LayerCount, ["weights"] = settings.Weights.ToString().ToLowerInvariant() };
var random = new Random(3);

// Prefill: one sequence of settings.Prefill tokens, one step.
{
    var ids = Enumerable.Range(0, settings.Prefill).Select(_ => random.Next(config.VocabSize)).ToArray();
    var positions = Enumerable.Range(0, settings.Prefill).ToArray();
    var next = new int[1];
    cache.Bind(tables, blocksPerSequence, 1);
    var times = new List<double>();
    for (int run = 0; run < 7; run++)
    {
        var clock = Stopwatch.StartNew();
        runner.ForwardGreedy(new ForwardBatch(ids, positions, [0], [settings.Prefill]), cache, next);
        times.Add(clock.Elapsed.TotalMilliseconds);
    }

    double ms = Median(times.Skip(2));
    Profile($"prefill {settings.Prefill}", () => runner.ForwardGreedy(new ForwardBatch(ids, positions, [0], [settings.Prefill]), cache, next));
    results["prefill_ms"] = ms;
    results["prefill_tok_s"] = settings.Prefill / ms * 1000;
    Console.WriteLine($"prefill {settings.Prefill} tokens: {ms:F2} ms, {settings.Prefill / ms * 1000:F0} tok/s");
}

var decode = new Dictionary<string, double>();
var stepMs = new Dictionary<string, double>();
foreach (int batch in settings.Batches)
{
    var (tokPerSecond, msPerStep) = Decode(batch);
    decode[batch.ToString(CultureInfo.InvariantCulture)] = tokPerSecond;
    stepMs[batch.ToString(CultureInfo.InvariantCulture)] = msPerStep;
    Console.WriteLine($"decode batch {batch,3}: {msPerStep:F3} ms a step, {tokPerSecond:F0} tok/s");
}

// Sampled decode as a chat client asks for it (temperature 0.8, top-p 0.95), drawn on the device: the greedy steps
// plus sample_rows and its threshold search over the vocabulary.
var sampled = new Dictionary<string, double>();
var chatDraw = new DeviceSampling(Temperature: 0.8f, TopK: 0, TopP: 0.95f, Seed: 0);
foreach (int batch in settings.Batches)
{
    var (tokPerSecond, msPerStep) = Decode(batch, chatDraw);
    sampled[batch.ToString(CultureInfo.InvariantCulture)] = tokPerSecond;
    Console.WriteLine($"decode batch {batch,3}, sampled (T 0.8, top-p 0.95): {msPerStep:F3} ms a step, {tokPerSecond:F0} tok/s");
}

results["decode_sampled"] = sampled;

// The comparisons: the same steps with one setting off, each turned back on after.
if (settings.ComparePdl)
{
    // Every kernel waits for the previous one to finish before it starts.
    results["decode_step_ms_without_programmatic_launch"] = DecodeWithout("programmatic launch", runner.SetProgrammaticLaunch, settings.Batches);
}

if (settings.CompareTuning)
{
    // The batches the matrix-vector kernels serve, with the defaults (the H200 sweep's table) in place of what the
    // warm-up trials chose on this GPU.
    results["decode_step_ms_default_kernels"] = DecodeWithout("the trials' kernels", runner.SetTunedProducts, settings.Batches.Where(b => b <= 8));
}

if (settings.CompareFused)
{
    // The batches the fused layers serve (up to 8 tokens), with nine kernels a layer instead of five.
    results["decode_step_ms_unfused"] = DecodeWithout("fused layers", runner.SetFusedSmallBatch, settings.Batches.Where(b => b <= 8));
}

if (settings.LongPrompt > 0)
{
    // Decode over a long context, where a step of few tokens has few attention blocks unless they are split.
    var split = new Dictionary<string, double>();
    var unsplit = new Dictionary<string, double>();
    var splits = new Dictionary<string, int>();
    foreach (int batch in new[] { 1, longBatch })
    {
        string key = batch.ToString(CultureInfo.InvariantCulture);
        split[key] = Decode(batch, prompt: settings.LongPrompt).MillisecondsPerStep;
        splits[key] = runner.DecodeAttentionSplits(batch);
        runner.SetSplitDecodeAttention(false);
        unsplit[key] = Decode(batch, prompt: settings.LongPrompt).MillisecondsPerStep;
        runner.SetSplitDecodeAttention(true);
        Console.WriteLine($"decode batch {batch,3} after {settings.LongPrompt} prompt tokens: {split[key]:F3} ms a step with attention split over {splits[key]} blocks a head group, {unsplit[key]:F3} ms unsplit");
    }

    results["long_prompt"] = settings.LongPrompt;
    results["decode_step_ms_long"] = split;
    results["decode_step_ms_long_unsplit"] = unsplit;
    results["decode_long_splits"] = splits;
}

results["decode"] = decode;
if (settings.Engine)
{
    results["engine_tok_s"] = EngineBench.Run(runner, settings.Batches, settings.Prompt, settings.NewTokens);
}

results["decode_step_ms"] = stepMs;
results["graphs"] = runner.GraphCount;
results["gemv_trials_ms"] = runner.GemvChoices.TrialTime.TotalMilliseconds;
results["gemv_trials"] = runner.GemvChoices.Tunings.Select(t => new Dictionary<string, object>
{
    ["product"] = $"{t.Family} {t.Rows}x{t.Columns}",
    ["tokens"] = t.Tokens,
    ["chosen"] = t.Chosen,
    ["us"] = t.Alternatives.ToDictionary(a => a.Kernel, a => a.Microseconds),
    // The matrix's bytes, read once a launch: with the chosen time, the bandwidth the product reached.
    ["bytes"] = DeviceMatrix.BytesFor(t.Format, t.Rows, t.Columns),
}).ToArray();
results["gemv_step_checks"] = runner.GemvChoices.StepChecks.ToArray();
Console.WriteLine($"warm-up trials of the matrix-vector kernels: {runner.GemvChoices.TrialTime.TotalMilliseconds:F0} ms");
foreach (var check in runner.GemvChoices.StepChecks)
{
    Console.WriteLine($"  a {check.Tokens}-token graph step: {check.ChosenMilliseconds:F3} ms with the trials' kernels, {check.DefaultMilliseconds:F3} ms with the defaults: {(check.Kept ? "kept" : "dropped")}");
}

foreach (var t in runner.GemvChoices.Tunings)
{
    string times = string.Join(", ", t.Alternatives.Select(a => $"{a.Kernel} {a.Microseconds:F1} us"));
    Console.WriteLine($"  {t.Family} {t.Rows}x{t.Columns} at {t.Tokens} token(s): {times} -> {t.Chosen}");
}

if (settings.Json is { } path)
{
    File.WriteAllText(path, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
}

return 0;

// Prompt of settings.Prompt tokens (or prompt) per sequence, prefilled in chunks, then settings.NewTokens greedy steps: the
// first is a warm-up that also captures the graph; the rest are timed.
(double TokensPerSecond, double MillisecondsPerStep) Decode(int batch, DeviceSampling? draw = null, int? prompt = null)
{
    int promptTokens = prompt ?? settings.Prompt;
    cache.Bind(tables, blocksPerSequence, batch);
    // Whole prompts of several sequences a step where they fit, else one sequence's prompt in pieces.
    int chunk = Math.Max(1, runner.MaxBatchTokens / promptTokens);
    int piece = Math.Min(promptTokens, runner.MaxBatchTokens);
    var next = new int[batch];
    for (int first = 0; first < batch; first += chunk)
    {
        int count = Math.Min(chunk, batch - first);
        for (int start = 0; start < promptTokens; start += piece)
        {
            int length = Math.Min(piece, promptTokens - start);
            var ids = Enumerable.Range(0, count * length).Select(_ => random.Next(config.VocabSize)).ToArray();
            var positions = Enumerable.Range(0, count * length).Select(i => start + (i % length)).ToArray();
            var sequences = Enumerable.Range(first, count).ToArray();
            runner.ForwardGreedy(new ForwardBatch(ids, positions, sequences, Enumerable.Repeat(length, count).ToArray()), cache, next.AsSpan(first, count));
        }
    }

    var all = Enumerable.Range(0, batch).ToArray();
    var ones = Enumerable.Repeat(1, batch).ToArray();
    var stepPositions = new int[batch];
    var tokens = (int[])next.Clone();
    double timed = 0;
    var draws = new DeviceSampling[batch];
    for (int step = 0; step < settings.NewTokens; step++)
    {
        Array.Fill(stepPositions, promptTokens + step);
        var clock = Stopwatch.StartNew();
        Step(step);

        if (step > 0)
        {
            timed += clock.Elapsed.TotalMilliseconds;
        }

        next.CopyTo(tokens, 0);
    }

    double perStep = timed / (settings.NewTokens - 1);
    Array.Fill(stepPositions, promptTokens + settings.NewTokens - 1);
    Profile($"{(draw is null ? "" : "sampled ")}decode step at batch {batch}{(prompt is null ? "" : $" after {promptTokens} tokens")}", () => Step(settings.NewTokens));
    return (batch / perStep * 1000, perStep);

    void Step(int step)
    {
        if (draw is not { } d)
        {
            runner.ForwardGreedy(new ForwardBatch(tokens, stepPositions, all, ones), cache, next);
            return;
        }

        for (int s = 0; s < batch; s++)
        {
            draws[s] = d with { Seed = ((ulong)step << 20) + (ulong)s };
        }

        runner.TryForwardSampled(new ForwardBatch(tokens, stepPositions, all, ones), cache, draws, next);
    }
}

// Decode at each batch with a setting turned off (set(false)), then on again: milliseconds a step by batch.
Dictionary<string, double> DecodeWithout(string what, Action<bool> set, IEnumerable<int> batches)
{
    set(false);
    var times = new Dictionary<string, double>();
    foreach (int batch in batches)
    {
        var (tokPerSecond, msPerStep) = Decode(batch);
        times[batch.ToString(CultureInfo.InvariantCulture)] = msPerStep;
        Console.WriteLine($"decode batch {batch,3} without {what}: {msPerStep:F3} ms a step, {tokPerSecond:F0} tok/s");
    }

    set(true);
    return times;
}

// With --profile: where one step's time goes, kernel by kernel (eager, timed with CUDA events).
void Profile(string what, Action step)
{
    if (!settings.Profile)
    {
        return;
    }

    using var profiler = new KernelProfiler();
    runner.Profiler = profiler;
    step();
    runner.Profiler = null;
    var entries = profiler.Collect();
    Console.WriteLine($"  profile of one {what}: {entries.Sum(e => e.Milliseconds):F3} ms in kernels");
    foreach (var (name, ms, calls) in entries.Take(12))
    {
        Console.WriteLine($"    {name,-36} {ms,8:F3} ms  {calls,4} calls");
    }
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted[sorted.Length / 2];
}
