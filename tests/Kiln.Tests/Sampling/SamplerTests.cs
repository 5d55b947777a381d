using Kiln.Runtime.Sampling;
using Kiln.Tests.Infrastructure;
using static Kiln.Tests.Sampling.SamplingReference;

namespace Kiln.Tests.Sampling;

/// <summary>Greedy choice, penalties, seeded streams, log-probabilities and the no-allocation promise.</summary>
public class SamplerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Greedy_IsTheArgMax(int seed)
    {
        float[] logits = RandomLogits(3000, seed);
        int expected = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            expected = logits[i] > logits[expected] ? i : expected;
        }

        var state = new SamplingState(SamplingParams.Greedy);
        Assert.Equal(expected, new Sampler(logits.Length).Sample(logits, SamplingParams.Greedy, state).Id);
        Assert.Equal(1, state.OutputCountOf(expected));
    }

    [Fact]
    public void Greedy_Ties_GoToTheLowestId()
    {
        float[] logits = [1f, 3f, 2f, 3f];
        Assert.Equal(1, new Sampler(4).Sample(logits, SamplingParams.Greedy, new SamplingState(SamplingParams.Greedy)).Id);
        Assert.Equal(1, Sampler.ArgMax(logits));
    }

    [Fact]
    public void Greedy_ChoosesAfterPenalties()
    {
        // By hand: 2.0 / 1.25 = 1.6 < 1.9, so a repeated token 0 loses to token 1.
        float[] logits = [2.0f, 1.9f, 0.5f];
        var p = SamplingParams.Greedy with { RepetitionPenalty = 1.25f };
        var state = new SamplingState(p);
        Assert.Equal(0, new Sampler(3).Sample(logits, p, state).Id); // nothing seen yet: plain argmax
        var seen = new SamplingState(p);
        seen.ObservePrompt([0, 2]);
        Assert.Equal(1, new Sampler(3).Sample(logits, p, seen).Id);
    }

    [Theory]
    [InlineData(1.3, 0, 0)]
    [InlineData(0.8, 0, 0)]
    [InlineData(1, 0.4, 0)]
    [InlineData(1, 0, -0.25)]
    [InlineData(1.3, -0.4, 0.25)]
    public void Penalties_ChangeLogitsAsTheirFormulasSay(double repetition, double presence, double frequency)
    {
        float[] logits = RandomLogits(50, seed: 6);
        int[] prompt = [1, 2, 3, 4, 10, 10];
        int[] output = [3, 3, 5, 7, 7, 7, 10, 20];
        var p = new SamplingParams { RepetitionPenalty = (float)repetition, PresencePenalty = (float)presence, FrequencyPenalty = (float)frequency };
        var state = new SamplingState(p);
        state.ObservePrompt(prompt);
        foreach (int t in output)
        {
            state.Record(t);
        }

        float[] actual = [.. logits];
        Sampler.ApplyPenalties(actual, p, state);
        for (int t = 0; t < logits.Length; t++)
        {
            double x = logits[t];
            int count = output.Count(o => o == t);
            if (prompt.Contains(t) || count > 0)
            {
                x = x > 0 ? x / repetition : x * repetition; // HF/vLLM, over prompt and output
            }

            x -= (frequency * count) + (presence * (count > 0 ? 1 : 0)); // OpenAI, over output only
            if (x == logits[t])
            {
                Assert.Equal(logits[t], actual[t]); // untouched tokens stay bit-identical
            }
            else
            {
                Assert.True(Math.Abs(actual[t] - x) < 1e-5, $"token {t}: {actual[t]} but the formula gives {x}");
            }
        }
    }

    [Fact]
    public void Seed_SameSequence_WhateverOtherStatesShareTheSampler()
    {
        const int Vocab = 300;
        var a = new SamplingParams { Seed = 11, TopP = 0.95f, RepetitionPenalty = 1.1f, PresencePenalty = 0.2f };
        var b = new SamplingParams { Seed = 12, TopK = 5, Temperature = 0.6f, LogProbs = 3 };
        var alone = new Sampler(Vocab);
        var aState = new SamplingState(a);
        int[] expected = [.. Enumerable.Range(0, 100).Select(step => alone.Sample(RandomLogits(Vocab, step), a, aState).Id)];

        var shared = new Sampler(Vocab);
        var again = new SamplingState(a);
        var other = new SamplingState(b);
        var greedy = new SamplingState(SamplingParams.Greedy);
        var actual = new List<int>();
        var otherTokens = new List<int>();
        for (int step = 0; step < 100; step++)
        {
            // Other sequences sample before and after, with other settings, as in a batch.
            otherTokens.Add(shared.Sample(RandomLogits(Vocab, 1000 + step), b, other).Id);
            actual.Add(shared.Sample(RandomLogits(Vocab, step), a, again).Id);
            shared.Sample(RandomLogits(Vocab, 2000 + step), SamplingParams.Greedy, greedy);
        }

        Assert.Equal(expected, actual.ToArray());
        Assert.NotEqual(expected, otherTokens.ToArray());
    }

    [Fact]
    public void SampleIndex_GivesDifferentStreamsThatReproduce()
    {
        var p = new SamplingParams { Seed = 5, N = 3 };
        float[] flat = new float[1000];
        var sampler = new Sampler(flat.Length);
        int[] Stream(SamplingState state) => [.. Enumerable.Range(0, 64).Select(_ => sampler.Sample(flat, p, state).Id)];

        int[] first = Stream(new SamplingState(p, 0));
        int[] second = Stream(new SamplingState(p, 1));
        int[] third = Stream(new SamplingState(p, 2));
        int[] otherSeed = Stream(new SamplingState(p with { Seed = 6 }, 0));
        Assert.Equal(second, Stream(new SamplingState(p, 1)));

        // Over 1000 equally likely tokens two independent streams agree at ~0.064 of 64 positions.
        Assert.True(first.Zip(second).Count(x => x.First == x.Second) < 4);
        Assert.True(second.Zip(third).Count(x => x.First == x.Second) < 4);
        Assert.True(first.Zip(otherSeed).Count(x => x.First == x.Second) < 4);

        // Neither is the other one step later (the failure of seeding by seed + index with SplitMix64).
        Assert.True(first.Skip(1).Zip(second).Count(x => x.First == x.Second) < 4);
        Assert.True(second.Skip(1).Zip(first).Count(x => x.First == x.Second) < 4);
    }

    [Fact]
    public void NoSeed_DrawsOneAndReportsIt()
    {
        var p = new SamplingParams();
        var state = new SamplingState(p);
        float[] logits = RandomLogits(500, seed: 1);
        var sampler = new Sampler(logits.Length);
        int[] run = [.. Enumerable.Range(0, 20).Select(_ => sampler.Sample(logits, p, state).Id)];
        var replay = new SamplingState(p with { Seed = state.Seed });
        Assert.Equal(run, Enumerable.Range(0, 20).Select(_ => sampler.Sample(logits, p, replay).Id));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 2)]
    [InlineData(20, 3)]
    public void LogProbs_AreLogSoftmaxOfRawLogits_TopNDescending(int n, int seed)
    {
        float[] logits = RandomLogits(3000, seed, scale: 8);
        double[] expected = LogSoftmax(logits);
        int[] order = Descending(expected);

        // Penalties and temperature change the choice but not the reported log-probabilities.
        var p = new SamplingParams { Temperature = 0.5f, RepetitionPenalty = 1.5f, TopK = 10, LogProbs = n, Seed = (ulong)seed };
        var state = new SamplingState(p);
        state.ObservePrompt(order.Take(3).ToArray());
        var sampler = new Sampler(logits.Length);
        for (int i = 0; i < 5; i++)
        {
            var token = sampler.Sample(logits, p, state);
            Assert.True(Math.Abs(token.LogProb - expected[token.Id]) < 1e-4, $"logprob of {token.Id}: {token.LogProb} vs {expected[token.Id]}");
            Assert.NotNull(token.TopLogProbs);
            Assert.Equal(order.Take(n), token.TopLogProbs.Select(t => t.Id));
            foreach (var alternative in token.TopLogProbs)
            {
                Assert.True(Math.Abs(alternative.LogProb - expected[alternative.Id]) < 1e-4);
            }

            Assert.True(token.TopLogProbs.Zip(token.TopLogProbs.Skip(1)).All(x => x.First.LogProb >= x.Second.LogProb));
        }
    }

    [Fact]
    public void LogProbs_OffGivesNone_ZeroGivesOnlyTheChosen()
    {
        float[] logits = RandomLogits(100, seed: 4);
        var sampler = new Sampler(logits.Length);
        var off = sampler.Sample(logits, SamplingParams.Greedy, new SamplingState(SamplingParams.Greedy));
        Assert.Null(off.TopLogProbs);
        Assert.True(Math.Abs(off.LogProb - LogSoftmax(logits)[off.Id]) < 1e-5);
        var zero = SamplingParams.Greedy with { LogProbs = 0 };
        Assert.Empty(sampler.Sample(logits, zero, new SamplingState(zero)).TopLogProbs!);
    }

    [Fact]
    public void Sample_RejectsLogitsLongerThanTheVocabulary()
    {
        var p = new SamplingParams();
        Assert.Throws<ArgumentException>(() => new Sampler(4).Sample(new float[5], p, new SamplingState(p)));
        Assert.Throws<ArgumentException>(() => new Sampler(4).Sample([], p, new SamplingState(p)));
    }

    public static TheoryData<string> Configurations => ["greedy", "dense", "top_k", "top_p", "all"];

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Sample_WithoutLogProbs_AllocatesNothing(string configuration)
    {
        var p = (configuration switch
        {
            "greedy" => SamplingParams.Greedy with { RepetitionPenalty = 1.2f, FrequencyPenalty = 0.3f },
            "dense" => new SamplingParams { Temperature = 0.8f, MinP = 0.01f },
            "top_k" => new SamplingParams { TopK = 40, PresencePenalty = 0.5f },
            "top_p" => new SamplingParams { TopP = 0.9f },
            _ => new SamplingParams { TopK = 40, TopP = 0.9f, MinP = 0.02f, RepetitionPenalty = 1.1f, PresencePenalty = 0.1f, FrequencyPenalty = 0.1f },
        }) with
        { Seed = 3 };
        const int Vocab = 4096;
        float[] logits = RandomLogits(Vocab, seed: 10, scale: 6);
        var sampler = new Sampler(Vocab);
        var state = new SamplingState(p);
        state.ObservePrompt(Enumerable.Range(0, Vocab).ToArray());
        for (int t = 0; t < Vocab; t++)
        {
            state.Record(t); // the history's tables are at full size, so only the sampler itself is measured
        }

        for (int i = 0; i < 50; i++)
        {
            sampler.Sample(logits, p, state);
        }

        var windows = ThreadAllocations.PerWindow(5, () =>
        {
            for (int i = 0; i < 50; i++)
            {
                sampler.Sample(logits, p, state);
            }
        });

        Assert.True(windows.Min() == 0, $"every window of 50 draws allocated: [{string.Join(", ", windows)}] bytes");
    }
}
