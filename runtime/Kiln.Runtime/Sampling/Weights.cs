using System.Numerics;

namespace Kiln.Runtime.Sampling;

/// <summary>
/// Selection and inverse-CDF draws over unnormalised probabilities ("weights", the top one ~1) for <see cref="Sampler"/>.
/// Candidates travel as sort keys so that selection and sorting need neither comparers nor allocation.
/// </summary>
internal static class Weights
{
    /// <summary>Block size of the dense inverse-CDF walk: vectorised block sums first, then a scalar walk in one block.</summary>
    private const int Block = 1024;

    /// <summary>
    /// Sort key: ascending keys are descending weights, ties by ascending id. Non-negative floats order as their bits,
    /// so one long compare replaces a comparer (and Span.Sort over longs allocates nothing).
    /// </summary>
    internal static long Key(float weight, int id) => ((long)(int.MaxValue - BitConverter.SingleToInt32Bits(weight)) << 32) | (uint)id;

    internal static int IdOf(long key) => (int)(uint)key;

    /// <summary>The k best keys with weight >= floor, sorted; one pass through a max-heap of the k best so far.</summary>
    internal static int SelectTopK(ReadOnlySpan<float> w, int k, float floor, Span<long> keys)
    {
        int n = 0;
        for (int i = 0; i < w.Length; i++)
        {
            if (!(w[i] >= floor))
            {
                continue;
            }

            long key = Key(w[i], i);
            if (n < k)
            {
                keys[n] = key;
                SiftUp(keys, n++);
            }
            else if (key < keys[0])
            {
                keys[0] = key;
                SiftDown(keys[..n]);
            }
        }

        keys[..n].Sort();
        return n;
    }

    private static void SiftUp(Span<long> heap, int i)
    {
        while (i > 0 && heap[(i - 1) / 2] < heap[i])
        {
            (heap[(i - 1) / 2], heap[i]) = (heap[i], heap[(i - 1) / 2]);
            i = (i - 1) / 2;
        }
    }

    private static void SiftDown(Span<long> heap)
    {
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= heap.Length)
            {
                return;
            }

            if (child + 1 < heap.Length && heap[child + 1] > heap[child])
            {
                child++;
            }

            if (heap[i] >= heap[child])
            {
                return;
            }

            (heap[i], heap[child]) = (heap[child], heap[i]);
            i = child;
        }
    }

    /// <summary>
    /// Sorted keys of a set that contains the top-p nucleus. Tokens at or above any threshold are a prefix of the
    /// descending order, so once such a prefix holds the needed mass only it is sorted, not the whole vocabulary.
    /// </summary>
    internal static int GatherNucleus(ReadOnlySpan<float> w, float floor, double need, Span<long> keys)
    {
        for (float threshold = 1f / 16; ; threshold *= 1f / 256)
        {
            float t = Math.Max(threshold, floor);
            int n = 0;
            double mass = 0;
            for (int i = 0; i < w.Length; i++)
            {
                if (w[i] >= t)
                {
                    keys[n++] = Key(w[i], i);
                    mass += w[i];
                }
            }

            if (mass >= need || t <= floor)
            {
                keys[..n].Sort();
                return n;
            }
        }
    }

    /// <summary>The length of the shortest prefix of sorted keys whose mass reaches <paramref name="need"/>.</summary>
    internal static int NucleusLength(ReadOnlySpan<float> w, ReadOnlySpan<long> sorted, double need)
    {
        double mass = 0;
        for (int i = 0; i < sorted.Length; i++)
        {
            mass += w[IdOf(sorted[i])];
            if (mass >= need)
            {
                return i + 1;
            }
        }

        return sorted.Length;
    }

    internal static double MassOf(ReadOnlySpan<float> w, ReadOnlySpan<long> keys)
    {
        double mass = 0;
        foreach (long key in keys)
        {
            mass += w[IdOf(key)];
        }

        return mass;
    }

    /// <summary>Inverse CDF over the kept candidates, in their sorted order.</summary>
    internal static int DrawKept(ReadOnlySpan<float> w, ReadOnlySpan<long> kept, double u)
    {
        double target = u * MassOf(w, kept);
        double mass = 0;
        foreach (long key in kept)
        {
            mass += w[IdOf(key)];
            if (mass > target)
            {
                return IdOf(key);
            }
        }

        return IdOf(kept[^1]); // only when rounding put the target at the very end
    }

    /// <summary>Inverse CDF over every token with weight >= floor, in id order: whole blocks by their sums, then one block by token.</summary>
    internal static int DrawDense(ReadOnlySpan<float> w, float floor, double u)
    {
        double target = u * MassAtLeast(w, floor);
        double mass = 0;
        for (int start = 0; start < w.Length; start += Block)
        {
            var block = w.Slice(start, Math.Min(Block, w.Length - start));
            double blockMass = SumAtLeast(block, floor);
            if (mass + blockMass <= target)
            {
                mass += blockMass;
                continue;
            }

            int last = -1;
            for (int i = 0; i < block.Length; i++)
            {
                if (block[i] >= floor)
                {
                    last = i;
                    mass += block[i];
                    if (mass > target)
                    {
                        return start + i;
                    }
                }
            }

            return start + last; // the scalar walk rounded slightly below the block's vector sum
        }

        // Only when the target rounded up to the total: the last token that counts.
        for (int i = w.Length - 1; i >= 0; i--)
        {
            if (w[i] >= floor)
            {
                return i;
            }
        }

        return Sampler.ArgMax(w);
    }

    /// <summary>Total weight >= floor, summed by blocks exactly as <see cref="DrawDense"/> walks them.</summary>
    internal static double MassAtLeast(ReadOnlySpan<float> w, float floor)
    {
        double mass = 0;
        for (int start = 0; start < w.Length; start += Block)
        {
            mass += SumAtLeast(w.Slice(start, Math.Min(Block, w.Length - start)), floor);
        }

        return mass;
    }

    private static double SumAtLeast(ReadOnlySpan<float> values, float floor)
    {
        var sums = Vector<float>.Zero;
        var floors = new Vector<float>(floor);
        int i = 0;
        for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
        {
            var v = new Vector<float>(values[i..]);
            sums += Vector.ConditionalSelect(Vector.GreaterThanOrEqual(v, floors), v, Vector<float>.Zero);
        }

        double sum = Vector.Sum(sums);
        for (; i < values.Length; i++)
        {
            sum += values[i] >= floor ? values[i] : 0;
        }

        return sum;
    }
}
