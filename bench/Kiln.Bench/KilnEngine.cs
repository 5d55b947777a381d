using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;

namespace Kiln.Bench;

/// <summary>Kiln's CPU runner: one sequence in a contiguous float32 KV cache; prefill is one Forward call.</summary>
internal sealed class KilnEngine : IBenchEngine
{
    private readonly LoadedModel _model;
    private readonly WorkerPool _pool;
    private readonly CpuModelRunner _runner;
    private readonly ContiguousKvCache _cache;
    private readonly float[] _logits;
    private readonly int[] _positions;
    private readonly int[] _one = new int[1];
    private readonly int[] _onePosition = new int[1];
    private readonly int[] _sequence = [0];
    private readonly int[] _length = new int[1];

    public KilnEngine(string path, int threads, int maxBatch, int maxContext)
    {
        _model = ModelLoader.Load(path);
        _pool = new WorkerPool(threads);
        _runner = new CpuModelRunner(_model, maxBatch, maxContext, _pool);
        _cache = new ContiguousKvCache(_model.Config, 1, maxContext);
        _logits = new float[_model.Config.VocabSize];
        _positions = [.. Enumerable.Range(0, maxBatch)];
    }

    public string Name => "Kiln";

    public int Prefill(ReadOnlySpan<int> prompt)
    {
        _length[0] = prompt.Length;
        _runner.Forward(new ForwardBatch(prompt, _positions.AsSpan(0, prompt.Length), _sequence, _length), _cache, _logits);
        return Sampler.ArgMax(_logits);
    }

    public int Decode(int token, int position)
    {
        _one[0] = token;
        _onePosition[0] = position;
        _length[0] = 1;
        _runner.Forward(new ForwardBatch(_one, _onePosition, _sequence, _length), _cache, _logits);
        return Sampler.ArgMax(_logits);
    }

    public void Dispose()
    {
        _runner.Dispose();
        _pool.Dispose();
        _model.Dispose();
    }
}
