using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;

namespace Kiln.Tests.LlamaCpp;

/// <summary>Kiln's CPU forward pass driven the way <see cref="Reference.LlamaCppReference"/> drives llama.cpp: one sequence, ids as given.</summary>
internal sealed class KilnForward : IDisposable
{
    private static readonly int[] SequenceZero = [0];
    private readonly LoadedModel _model;
    private readonly WorkerPool _pool;
    private readonly CpuModelRunner _runner;
    private readonly ContiguousKvCache _cache;

    public KilnForward(string path, int maxContext = 512, int threads = 0)
    {
        _model = ModelLoader.Load(path);
        _pool = new WorkerPool(threads > 0 ? threads : Environment.ProcessorCount);
        _runner = new CpuModelRunner(_model, maxContext, maxContext, _pool);
        _cache = new ContiguousKvCache(_model.Config, 1, maxContext);
    }

    public int VocabSize => _model.Config.VocabSize;

    public LoadedModel Model => _model;

    /// <summary>Every position's logits from one step over the whole prompt, row-major [tokens, vocab].</summary>
    public float[] Logits(ReadOnlySpan<int> tokens)
    {
        var logits = new float[tokens.Length * VocabSize];
        int[] positions = [.. Enumerable.Range(0, tokens.Length)];
        _runner.Forward(new ForwardBatch(tokens, positions, SequenceZero, [tokens.Length]), _cache, logits, allPositions: true);
        return logits;
    }

    /// <summary>Every position's logits from one step a token (the decode path through the KV cache).</summary>
    public float[] LogitsIncremental(ReadOnlySpan<int> tokens)
    {
        var logits = new float[tokens.Length * VocabSize];
        for (int t = 0; t < tokens.Length; t++)
        {
            Step(tokens[t], t, logits.AsSpan(t * VocabSize, VocabSize));
        }

        return logits;
    }

    /// <summary>Exactly <paramref name="count"/> greedy tokens: prefill in one step, then one step a token.</summary>
    public int[] Greedy(ReadOnlySpan<int> prompt, int count)
    {
        var logits = new float[VocabSize];
        int[] positions = [.. Enumerable.Range(0, prompt.Length)];
        _runner.Forward(new ForwardBatch(prompt, positions, SequenceZero, [prompt.Length]), _cache, logits);
        var generated = new int[count];
        for (int n = 0; n < count; n++)
        {
            generated[n] = Reference.LlamaCppReference.ArgMax(logits);
            if (n + 1 < count)
            {
                Step(generated[n], prompt.Length + n, logits);
            }
        }

        return generated;
    }

    public void Dispose()
    {
        _runner.Dispose();
        _pool.Dispose();
        _model.Dispose();
    }

    private void Step(int token, int position, Span<float> logits) =>
        _runner.Forward(new ForwardBatch([token], [position], SequenceZero, [1]), _cache, logits);
}
