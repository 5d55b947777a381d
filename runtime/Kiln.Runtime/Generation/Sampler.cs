using System.Numerics.Tensors;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Generation;

/// <summary>
/// Picks a token from logits: greedy (argmax, ties to the lowest id, as llama.cpp and transformers do) or temperature
/// with nucleus (top-p) filtering, from its own seeded random stream. Buffers are sized once for the vocabulary.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly float[] _probabilities;
    private readonly int[] _order;
    private readonly float[] _sortKeys;
    private DeterministicRandom _random;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _options = options;
        _probabilities = new float[vocabSize];
        _order = new int[vocabSize];
        _sortKeys = new float[vocabSize];
        _random = new DeterministicRandom(options.Seed ?? (ulong)Random.Shared.NextInt64());
    }

    public static int ArgMax(ReadOnlySpan<float> logits) => TensorPrimitives.IndexOfMax(logits);

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (_options.Temperature == 0)
        {
            return ArgMax(logits);
        }

        var p = _probabilities.AsSpan(0, logits.Length);
        TensorPrimitives.Divide(logits, _options.Temperature, p);
        TensorPrimitives.Subtract(p, TensorPrimitives.Max(p), p);
        TensorPrimitives.Exp(p, p);
        TensorPrimitives.Divide(p, TensorPrimitives.Sum(p), p);

        float target = _random.NextSingle();
        if (_options.TopP < 1)
        {
            // Keep the smallest set of most likely tokens whose mass reaches top_p, then sample within it.
            var order = _order.AsSpan(0, logits.Length);
            for (int i = 0; i < order.Length; i++)
            {
                order[i] = i;
            }

            var keys = _sortKeys.AsSpan(0, logits.Length);
            TensorPrimitives.Negate(p, keys);
            keys.Sort(order);
            float mass = 0;
            int kept = 0;
            while (kept < order.Length && mass < _options.TopP)
            {
                mass += p[order[kept++]];
            }

            target *= mass;
            for (int i = 0; i < kept; i++)
            {
                target -= p[order[i]];
                if (target < 0)
                {
                    return order[i];
                }
            }

            return order[kept - 1];
        }

        for (int i = 0; i < p.Length; i++)
        {
            target -= p[i];
            if (target < 0)
            {
                return i;
            }
        }

        return ArgMax(logits);
    }
}
