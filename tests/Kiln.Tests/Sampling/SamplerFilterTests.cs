using Kiln.Runtime.Sampling;
using static Kiln.Tests.Sampling.SamplingReference;

namespace Kiln.Tests.Sampling;

/// <summary>Temperature, min-p, top-k and top-p: the kept sets against float64 references and draw frequencies against softmax.</summary>
public class SamplerFilterTests
{
    [Theory]
    [InlineData(0.7)]
    [InlineData(1.0)]
    [InlineData(1.6)]
    public void Temperature_DrawFrequencies_MatchSoftmaxOfLogitsOverT(double temperature)
    {
        float[] logits = [1.0f, 0.5f, 0f, -0.5f, 2.0f, 1.5f, -1.0f];
        var p = new SamplingParams { Temperature = (float)temperature, Seed = 1234 };
        int[] counts = Draw(new Sampler(logits.Length), logits, p, 60_000);

        double chi = ChiSquare(counts, Softmax(logits, temperature));
        Assert.True(chi < Critical(logits.Length - 1), $"chi-square {chi:F1} against softmax(logits / {temperature})");

        // The same counts must be far from a wrong temperature, or this test could not fail.
        double wrong = ChiSquare(counts, Softmax(logits, temperature * 1.3));
        Assert.True(wrong > 10 * Critical(logits.Length - 1), $"chi-square {wrong:F1} against the wrong temperature");
    }

    [Fact]
    public void Temperature_LargeVocabulary_DrawFrequenciesMatchAcrossBlocks()
    {
        // 5000 tokens cross several of the dense walk's 1024-token blocks; compare per bucket of 500 ids.
        float[] logits = RandomLogits(5000, seed: 3, scale: 4);
        var p = new SamplingParams { Temperature = 0.9f, Seed = 99 };
        int[] counts = Draw(new Sampler(logits.Length), logits, p, 40_000);
        double[] probs = Softmax(logits, 0.9);
        int[] bucketCounts = [.. Enumerable.Range(0, 10).Select(b => counts.Skip(b * 500).Take(500).Sum())];
        double[] bucketProbs = [.. Enumerable.Range(0, 10).Select(b => probs.Skip(b * 500).Take(500).Sum())];
        double chi = ChiSquare(bucketCounts, bucketProbs);
        Assert.True(chi < Critical(9), $"chi-square {chi:F1} over 10 id buckets");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(50)]
    [InlineData(1999)]
    public void TopK_KeepsExactlyTheKMostLikely(int k)
    {
        float[] logits = RandomLogits(2000, seed: k);
        var p = new SamplingParams { TopK = k, Temperature = 1.3f };
        int[] kept = new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p));
        Assert.Equal(Descending(Softmax(logits, 1.3)).Take(k), kept);
    }

    [Fact]
    public void TopK_Ties_KeepExactlyKLowestIds()
    {
        float[] logits = [0.5f, 1f, 1f, 1f, 1f, -2f];
        var p = new SamplingParams { TopK = 2 };
        int[] expected = [1, 2];
        Assert.Equal(expected, new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p)));
    }

    [Fact]
    public void TopK_DrawFrequencies_MatchRenormalisedTopK()
    {
        float[] logits = [0.3f, 2f, -1f, 1.2f, 0.9f, 1.8f, 0f, -0.4f, 0.1f, 1.0f];
        var p = new SamplingParams { TopK = 3, Temperature = 1.5f, Seed = 5 };
        int[] counts = Draw(new Sampler(logits.Length), logits, p, 30_000);
        double[] probs = Softmax(logits, 1.5);
        int[] top = [.. Descending(probs).Take(3)];
        double keptMass = top.Sum(i => probs[i]);
        double[] expected = [.. probs.Select((x, i) => top.Contains(i) ? x / keptMass : 0)];
        double chi = ChiSquare(counts, expected);
        Assert.True(chi < Critical(2), $"chi-square {chi:F1}");
    }

    [Theory]
    [InlineData(0.3, new[] { 1 })]
    [InlineData(0.65, new[] { 1, 3 })]
    [InlineData(0.75, new[] { 1, 3, 2 })]
    [InlineData(0.95, new[] { 1, 3, 2, 0 })]
    public void TopP_HandChecked_KeepsSmallestPrefixReachingP(double topP, int[] expected)
    {
        // Probabilities 0.1, 0.4, 0.2, 0.3: prefixes by likelihood reach 0.4, 0.7, 0.9, 1.0.
        float[] logits = [MathF.Log(0.1f), MathF.Log(0.4f), MathF.Log(0.2f), MathF.Log(0.3f)];
        var p = new SamplingParams { TopP = (float)topP };
        Assert.Equal(expected, new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(300)]
    [InlineData(1500)]
    public void TopP_LargeVocabulary_KeepsSmallestPrefixReachingP(int size)
    {
        // top_p halfway into the size-th token's mass: exactly `size` tokens reach it, with a margin for float32.
        float[] logits = RandomLogits(5000, seed: 100 + size, scale: 5);
        double[] probs = Softmax(logits, 0.8);
        int[] order = Descending(probs);
        float topP = TopPKeeping(probs, order, size);
        Assert.Equal(size, NucleusLength(probs, order, topP));

        var p = new SamplingParams { TopP = topP, Temperature = 0.8f };
        Assert.Equal(order.Take(size), new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p)));
    }

    [Fact]
    public void TopP_DrawFrequencies_MatchRenormalisedNucleus()
    {
        float[] logits = [MathF.Log(0.1f), MathF.Log(0.4f), MathF.Log(0.2f), MathF.Log(0.3f)];
        var p = new SamplingParams { TopP = 0.65f, Seed = 17 };
        int[] counts = Draw(new Sampler(logits.Length), logits, p, 30_000);
        double chi = ChiSquare(counts, [0, 0.4 / 0.7, 0, 0.3 / 0.7]);
        Assert.True(chi < Critical(1), $"chi-square {chi:F1}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    [InlineData(700)]
    public void MinP_DropsTokensBelowMinPTimesTheTopProbability(int survivors)
    {
        float[] logits = RandomLogits(3000, seed: survivors, scale: 6);
        double[] probs = Softmax(logits, 0.9);
        int[] order = Descending(probs);
        double max = probs[order[0]];

        // min_p halfway between the survivors-th and the next token's ratio to the top probability.
        float minP = (float)((probs[order[survivors - 1]] + probs[order[survivors]]) / 2 / max);
        int[] expected = [.. order.Where(i => probs[i] >= minP * max)];
        Assert.Equal(survivors, expected.Length);

        var p = new SamplingParams { MinP = minP, Temperature = 0.9f };
        Assert.Equal(expected, new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p)));
    }

    [Fact]
    public void MinP_One_KeepsOnlyTheMostLikely()
    {
        float[] logits = RandomLogits(100, seed: 8);
        var p = new SamplingParams { MinP = 1, Seed = 4 };
        int[] counts = Draw(new Sampler(logits.Length), logits, p, 200);
        Assert.Equal(200, counts[Sampler.ArgMax(logits)]);
    }

    [Fact]
    public void MinPThenTopKThenTopP_EachFiltersWhatThePreviousKept()
    {
        float[] logits = RandomLogits(4000, seed: 21, scale: 6);
        const double T = 1.1;
        double[] probs = Softmax(logits, T);
        int[] order = Descending(probs);
        float minP = (float)((probs[order[399]] + probs[order[400]]) / 2 / probs[order[0]]);
        int[] topK = [.. order.Take(100)];

        // top_p is a share of what top-k kept (vLLM renormalises), not of the whole vocabulary.
        float topP = TopPKeeping(probs, topK, 60);
        Assert.Equal(60, NucleusLength(probs, topK, topP));
        Assert.NotEqual(60, Math.Min(100, NucleusLength(probs, order, topP)));

        var p = new SamplingParams { Temperature = (float)T, MinP = minP, TopK = 100, TopP = topP };
        Assert.Equal(order.Take(60), new Sampler(logits.Length).Candidates(logits, p, new SamplingState(p)));

        // With min_p tighter than top_k, top-k keeps just the min-p survivors.
        var tight = p with { MinP = (float)((probs[order[29]] + probs[order[30]]) / 2 / probs[order[0]]), TopP = 1 };
        Assert.Equal(order.Take(30), new Sampler(logits.Length).Candidates(logits, tight, new SamplingState(tight)));
    }
}
