using Kiln.Runtime.Sampling;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Kiln.Bench;

/// <summary>
/// llama.cpp through LLamaSharp's CPU backend. Same float32 KV cache as Kiln and no flash attention, so both engines do
/// the same arithmetic; the batch is the whole prompt, so prefill is one llama_decode call.
/// </summary>
internal sealed class LlamaCppEngine : IBenchEngine
{
    private static readonly NativeLogConfig.LLamaLogCallback Discard = static (_, _) => { };
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    public LlamaCppEngine(string path, int threads, int maxBatch, int maxContext)
    {
        if (!NativeLibraryConfig.LLama.LibraryHasLoaded)
        {
            NativeLibraryConfig.All.WithLogCallback(Discard);
        }

        NativeLogConfig.llama_log_set(Discard);
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)maxContext,
            BatchSize = (uint)maxBatch,
            UBatchSize = (uint)maxBatch,
            SeqMax = 1,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
            FlashAttention = false,
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _context = _weights.CreateContext(parameters);
    }

    public string Name => "llama.cpp";

    public int Prefill(ReadOnlySpan<int> prompt)
    {
        _context.NativeHandle.MemoryClear(true);
        _batch.Clear();
        for (int i = 0; i < prompt.Length; i++)
        {
            _batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        }

        return Run();
    }

    public int Decode(int token, int position)
    {
        _batch.Clear();
        _batch.Add(token, position, LLamaSeqId.Zero, true);
        return Run();
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }

    private int Run()
    {
        var result = _context.NativeHandle.Decode(_batch);
        return result == DecodeResult.Ok
            ? Sampler.ArgMax(_context.NativeHandle.GetLogitsIth(_batch.TokenCount - 1))
            : throw new InvalidOperationException($"llama_decode failed: {result}");
    }
}
