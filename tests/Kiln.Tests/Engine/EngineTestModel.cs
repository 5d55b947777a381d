using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Engine;

/// <summary>A small random Llama (GGUF, synthetic SentencePiece vocabulary) shared by the engine tests of a class.</summary>
public sealed class EngineTestModel : IDisposable
{
    private readonly TempGguf _file;

    public EngineTestModel()
    {
        _file = new TempGguf(new RandomLlamaOptions { VocabSize = 512, Hidden = 64, Intermediate = 128, Layers = 2, Heads = 4, KvHeads = 2, ContextLength = 512, Seed = 7 });
        Model = ModelLoader.Load(_file.Path);
    }

    public LoadedModel Model { get; }

    public InferenceEngine CreateEngine(int blocks = 512, int blockSize = 4, int maxBatchedTokens = 64, int maxSequences = 16, int maxWaiting = 1024, bool prefixCaching = true) =>
        new(Model, new EngineOptions
        {
            BlockSize = blockSize,
            KvCacheBytes = blocks * Kiln.Runtime.Kv.PagedKvCache.BlockBytes(Model.Config.LayerCount, Model.Config.KvDim, blockSize),
            MaxBatchedTokens = maxBatchedTokens,
            MaxSequences = maxSequences,
            MaxWaitingRequests = maxWaiting,
            PrefixCaching = prefixCaching,
            Threads = 2,
        });

    /// <summary>A deterministic prompt of token ids drawn from the vocabulary (no BOS/EOS).</summary>
    public static int[] Prompt(int seed, int length)
    {
        var random = new Random(seed);
        var ids = new int[length];
        for (int i = 0; i < length; i++)
        {
            ids[i] = random.Next(SyntheticVocabulary.FirstByteToken + 256, 512);
        }

        return ids;
    }

    public static GenerationRequest Request(int[] prompt, int maxTokens, float temperature = 0, ulong? seed = null, int n = 1, int priority = 0) => new()
    {
        PromptTokenIds = prompt,
        Sampling = new SamplingParams { Temperature = temperature, Seed = seed, MaxTokens = maxTokens, N = n, IgnoreEos = true },
        Priority = priority,
    };

    /// <summary>Collects a request's tokens per sample, its finish reasons and its usage.</summary>
    public static async Task<Completion> RunAsync(InferenceEngine engine, GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var completion = new Completion(request.Sampling.N);
        await foreach (var e in engine.Submit(request, cancellationToken))
        {
            if (e.TokenId >= 0)
            {
                completion.Tokens[e.SampleIndex].Add(e.TokenId);
            }

            completion.Text[e.SampleIndex] += e.Text;
            if (e.FinishReason is { } reason)
            {
                completion.Finish[e.SampleIndex] = reason;
            }

            completion.Usage ??= e.Usage;
        }

        return completion;
    }

    public void Dispose()
    {
        Model.Dispose();
        _file.Dispose();
    }
}

public sealed class Completion(int samples)
{
    public List<int>[] Tokens { get; } = [.. Enumerable.Range(0, samples).Select(_ => new List<int>())];

    public string[] Text { get; } = [.. Enumerable.Repeat(string.Empty, samples)];

    public FinishReason?[] Finish { get; } = new FinishReason?[samples];

    public Usage? Usage { get; set; }
}
