namespace Kiln.Tests.Sampling;

/// <summary>Plain float64 versions of what the sampler computes, and the statistics to compare draws with them.</summary>
internal static class SamplingReference
{
    public static float[] RandomLogits(int vocab, int seed, double scale = 3)
    {
        var random = new Random(seed);
        var logits = new float[vocab];
        for (int i = 0; i < vocab; i++)
        {
            logits[i] = (float)((random.NextDouble() - 0.5) * 2 * scale);
        }

        return logits;
    }

    public static double[] Softmax(IReadOnlyList<float> logits, double temperature = 1)
    {
        double max = logits.Max(x => (double)x);
        double[] p = [.. logits.Select(x => Math.Exp((x - max) / temperature))];
        double sum = p.Sum();
        return [.. p.Select(x => x / sum)];
    }

    public static double[] LogSoftmax(IReadOnlyList<float> logits)
    {
        double max = logits.Max(x => (double)x);
        double lse = max + Math.Log(logits.Sum(x => Math.Exp(x - max)));
        return [.. logits.Select(x => x - lse)];
    }

    /// <summary>Token ids by descending probability, ties by ascending id.</summary>
    public static int[] Descending(IReadOnlyList<double> p) => [.. Enumerable.Range(0, p.Count).OrderByDescending(i => p[i]).ThenBy(i => i)];

    /// <summary>The length of the shortest prefix of <paramref name="order"/> whose share of its total mass reaches <paramref name="topP"/>.</summary>
    public static int NucleusLength(IReadOnlyList<double> p, IReadOnlyList<int> order, double topP)
    {
        double total = order.Sum(i => p[i]);
        double mass = 0;
        for (int k = 0; k < order.Count; k++)
        {
            mass += p[order[k]];
            if (mass >= topP * total)
            {
                return k + 1;
            }
        }

        return order.Count;
    }

    /// <summary>A top_p that keeps exactly <paramref name="k"/> of <paramref name="order"/>: halfway into the k-th token's share.</summary>
    public static float TopPKeeping(IReadOnlyList<double> p, IReadOnlyList<int> order, int k)
    {
        double total = order.Sum(i => p[i]);
        double before = order.Take(k - 1).Sum(i => p[i]) / total;
        double share = p[order[k - 1]] / total;

        // float32 sums of thousands of weights are good to ~1e-6; a thinner margin would test rounding, not top-p.
        Assert.True(share / 2 > 1e-5, $"the {k}-th token's share {share:E2} is too thin to separate float32 from float64");
        return (float)(before + (share / 2));
    }

    public static int[] Draw(Kiln.Runtime.Sampling.Sampler sampler, float[] logits, Kiln.Runtime.Sampling.SamplingParams p, int draws)
    {
        var state = new Kiln.Runtime.Sampling.SamplingState(p);
        var counts = new int[logits.Length];
        for (int i = 0; i < draws; i++)
        {
            counts[sampler.Sample(logits, p, state).Id]++;
        }

        return counts;
    }

    /// <summary>Pearson's statistic of <paramref name="counts"/> against <paramref name="expected"/> probabilities; counts where none is expected are infinite.</summary>
    public static double ChiSquare(IReadOnlyList<int> counts, IReadOnlyList<double> expected)
    {
        double n = counts.Sum();
        double chi = 0;
        for (int i = 0; i < counts.Count; i++)
        {
            double e = expected[i] * n;
            if (e == 0)
            {
                if (counts[i] != 0)
                {
                    return double.PositiveInfinity;
                }

                continue;
            }

            chi += (counts[i] - e) * (counts[i] - e) / e;
        }

        return chi;
    }

    /// <summary>The chi-square value exceeded with probability 0.001 (Wilson–Hilferty; within 1% of the tables for df >= 3).</summary>
    public static double Critical(int degreesOfFreedom)
    {
        const double Z = 3.0902; // the standard normal's 0.999 quantile
        double a = 2.0 / (9 * degreesOfFreedom);
        return degreesOfFreedom * Math.Pow(1 - a + (Z * Math.Sqrt(a)), 3);
    }
}
