using Kiln.Bench.Common;
using Kiln.Runtime.Sampling;
using LLama;
using LLama.Native;

namespace Kiln.Bench;

/// <summary>
/// llama.cpp through LLamaSharp's CPU backend, set up by <see cref="LlamaCppSetup"/> (the tests' reference uses the
/// same): same float32 KV cache as Kiln and no flash attention, so both engines do the same arithmetic; the batch is the
/// whole prompt, so prefill is one llama_decode call.
/// </summary>
internal sealed class LlamaCppEngine : IBenchEngine
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    public LlamaCppEngine(string path, int threads, int maxBatch, int maxContext) =>
        (_weights, _context) = LlamaCppSetup.Load(LlamaCppSetup.Parameters(path, maxContext, maxBatch, threads));

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
        LlamaCppSetup.Decode(_context, _batch);
        return Sampler.ArgMax(_context.NativeHandle.GetLogitsIth(_batch.TokenCount - 1));
    }
}
