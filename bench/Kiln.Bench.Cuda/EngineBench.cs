using System.Diagnostics;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;

/// <summary>
/// --engine: the serving path. N concurrent greedy requests (prompt, then new tokens) through
/// <see cref="InferenceEngine"/> on the CUDA runner: scheduling, paged KV, CUDA graphs and device argmax together.
/// Reports output tokens per second over the wall time from the first submission to the last token.
/// </summary>
internal static class EngineBench
{
    public static Dictionary<string, double> Run(CudaModelRunner runner, int[] concurrency, int prompt, int newTokens)
    {
        // The weights live on the GPU: the engine needs only the model's description.
        var config = runner.Config;
        var model = new ModelDescription("random weights on the GPU", config, null, null, []);
        var options = new EngineOptions
        {
            BlockSize = 16,
            KvCacheBytes = 4L << 30,
            MaxBatchedTokens = runner.MaxBatchTokens,
            MaxSequences = runner.MaxLogitRows,
            MaxWaitingRequests = 1024,
        };
        var results = new Dictionary<string, double>();
        using var engine = new InferenceEngine(model, runner, options); // disposes the runner when done
        var random = new Random(11);
        foreach (int n in concurrency.Prepend(1)) // the first pass warms the engine's graphs up and is not reported
        {
            var requests = Enumerable.Range(0, n).Select(_ => new GenerationRequest
            {
                PromptTokenIds = Enumerable.Range(0, prompt).Select(_ => random.Next(config.VocabSize)).ToArray(),
                Sampling = SamplingParams.Greedy with { MaxTokens = newTokens, IgnoreEos = true },
            }).ToArray();
            var clock = Stopwatch.StartNew();
            long tokens = Task.WhenAll(requests.Select(r => Count(engine, r))).GetAwaiter().GetResult().Sum();
            double seconds = clock.Elapsed.TotalSeconds;
            results[n.ToString(System.Globalization.CultureInfo.InvariantCulture)] = tokens / seconds;
            Console.WriteLine($"engine, {n,3} concurrent requests ({prompt} + {newTokens} tokens): {tokens / seconds,8:F0} output tok/s, {seconds * 1000:F0} ms");
        }

        return results;
    }

    private static async Task<long> Count(InferenceEngine engine, GenerationRequest request)
    {
        long count = 0;
        await foreach (var e in engine.Submit(request))
        {
            count += e.TokenId >= 0 ? 1 : 0;
        }

        return count;
    }
}
