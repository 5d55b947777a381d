using System.Numerics.Tensors;

namespace Kiln.Runtime.Sampling;

/// <summary>
/// Chooses the next token of many sequences, one at a time, on the engine thread. The scratch buffers are sized for the
/// vocabulary once and reused across sequences; everything per sequence (random stream, history) is in its
/// <see cref="SamplingState"/>, so the order in which the engine samples its batch never changes a seeded result.
/// Not thread-safe: one sampler per thread.
/// </summary>
public sealed class Sampler
{
    /// <summary>Penalised, tempered logits and then their unnormalised probabilities.</summary>
    private readonly float[] _work;

    /// <summary>Candidates as sort keys (see <see cref="Weights.Key"/>), a prefix of the vocabulary's descending order once sorted.</summary>
    private readonly long[] _keys;

    public Sampler(int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        VocabSize = vocabSize;
        _work = new float[vocabSize];
        _keys = new long[vocabSize];
    }

    public int VocabSize { get; }

    /// <summary>The most likely token; ties go to the lowest id, as in llama.cpp and transformers.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => TensorPrimitives.IndexOfMax(logits);

    /// <summary>
    /// Chooses a token in vLLM's order: repetition/frequency/presence penalties, then greedy argmax or temperature,
    /// min-p, top-k, top-p (each filter renormalises over what the previous one kept), and an inverse-CDF draw from
    /// <paramref name="state"/>'s stream. Records the token in <paramref name="state"/>. Allocates nothing unless
    /// <see cref="SamplingParams.LogProbs"/> is set. <paramref name="p"/> must be valid (a state's constructor checks).
    /// </summary>
    public SampledToken Sample(ReadOnlySpan<float> logits, SamplingParams p, SamplingState state)
    {
        CheckArguments(logits, p, state);

        // Log-probabilities describe the raw model output (before penalties and temperature), as vLLM reports them.
        float logSumExp = LogSumExp(logits);
        int id;
        if (p.IsGreedy)
        {
            id = ArgMax(Penalized(logits, p, state));
        }
        else
        {
            // Exactly one draw per token, whichever path the filters take, so streams stay aligned across settings.
            double u = state.NextUniform();
            int kept = Filter(logits, p, state, out float floor);
            var weights = _work.AsSpan(0, logits.Length);
            id = kept < 0 ? Weights.DrawDense(weights, floor, u) : Weights.DrawKept(weights, _keys.AsSpan(0, kept), u);
        }

        state.Record(id);
        var top = p.LogProbs is int n ? TopLogProbs(logits, logSumExp, n) : null;
        return new SampledToken(id, logits[id] - logSumExp, top);
    }

    /// <summary>
    /// The tokens <see cref="Sample"/> could return for this history, most likely first (ties by id), without drawing
    /// or recording anything. Allocates; for tests and diagnostics.
    /// </summary>
    internal int[] Candidates(ReadOnlySpan<float> logits, SamplingParams p, SamplingState state)
    {
        CheckArguments(logits, p, state);
        if (p.IsGreedy)
        {
            return [ArgMax(Penalized(logits, p, state))];
        }

        int kept = Filter(logits, p, state, out float floor);
        if (kept < 0)
        {
            var w = _work.AsSpan(0, logits.Length);
            kept = 0;
            for (int i = 0; i < w.Length; i++)
            {
                if (w[i] >= floor)
                {
                    _keys[kept++] = Weights.Key(w[i], i);
                }
            }

            _keys.AsSpan(0, kept).Sort();
        }

        var ids = new int[kept];
        for (int i = 0; i < kept; i++)
        {
            ids[i] = Weights.IdOf(_keys[i]);
        }

        return ids;
    }

    /// <summary>
    /// HF/vLLM repetition penalty over prompt and output tokens (each distinct token once), then OpenAI's
    /// <c>logit -= frequency * count + presence * (count > 0)</c> over output tokens only.
    /// </summary>
    internal static void ApplyPenalties(Span<float> logits, SamplingParams p, SamplingState state)
    {
        float repetition = p.RepetitionPenalty;
        if (repetition != 1)
        {
            foreach (int token in state.PromptTokens)
            {
                if ((uint)token < (uint)logits.Length && !state.OutputCounts.ContainsKey(token))
                {
                    logits[token] = Repeated(logits[token], repetition);
                }
            }
        }

        foreach (var (token, count) in state.OutputCounts)
        {
            if ((uint)token < (uint)logits.Length)
            {
                float x = repetition != 1 ? Repeated(logits[token], repetition) : logits[token];
                logits[token] = x - ((p.FrequencyPenalty * count) + p.PresencePenalty);
            }
        }

        // Dividing a positive logit and multiplying a negative one both make a seen token less likely.
        static float Repeated(float logit, float penalty) => logit > 0 ? logit / penalty : logit * penalty;
    }

    private void CheckArguments(ReadOnlySpan<float> logits, SamplingParams p, SamplingState state)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(state);
        if (logits.IsEmpty || logits.Length > VocabSize)
        {
            throw new ArgumentException($"expected 1 to {VocabSize} logits, got {logits.Length}", nameof(logits));
        }
    }

    private float LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        var scratch = _work.AsSpan(0, logits.Length);
        TensorPrimitives.Subtract(logits, max, scratch);
        TensorPrimitives.Exp(scratch, scratch);
        return max + (float)Math.Log(TensorPrimitives.Sum(scratch));
    }

    /// <summary>The logits with penalties applied (a copy in the scratch buffer), or the logits themselves when none apply.</summary>
    private ReadOnlySpan<float> Penalized(ReadOnlySpan<float> logits, SamplingParams p, SamplingState state)
    {
        if (!state.NeedsPenalties(p))
        {
            return logits;
        }

        var work = _work.AsSpan(0, logits.Length);
        logits.CopyTo(work);
        ApplyPenalties(work, p, state);
        return work;
    }

    /// <summary>
    /// Leaves unnormalised probabilities (the most likely token ~1) in the scratch buffer and returns how many sorted
    /// candidates top-k/top-p kept in <see cref="_keys"/>, or -1 when every token with weight >= floor is kept.
    /// Min-p is the floor: "below min_p * max prob" needs no normalisation.
    /// </summary>
    private int Filter(ReadOnlySpan<float> logits, SamplingParams p, SamplingState state, out float floor)
    {
        var scores = Penalized(logits, p, state);
        var w = _work.AsSpan(0, logits.Length);
        int best = ArgMax(scores);
        TensorPrimitives.Divide(scores, p.Temperature, w);
        TensorPrimitives.Subtract(w, w[best], w);
        TensorPrimitives.Exp(w, w);

        // Relative to the top weight as Exp rounded it (not assumed 1), so min_p = 1 keeps the top token and its ties;
        // the epsilon floor also leaves out tokens whose probability underflowed to 0.
        floor = Math.Max(p.MinP * w[best], float.Epsilon);
        bool topK = p.TopK > 0 && p.TopK < w.Length;
        if (!topK && p.TopP >= 1)
        {
            return -1;
        }

        var keys = _keys.AsSpan();
        int kept;
        double mass;
        if (topK)
        {
            kept = Weights.SelectTopK(w, p.TopK, floor, keys);
            mass = Weights.MassOf(w, keys[..kept]);
        }
        else
        {
            mass = Weights.MassAtLeast(w, floor);
            kept = Weights.GatherNucleus(w, floor, p.TopP * mass, keys);
        }

        return p.TopP < 1 ? Weights.NucleusLength(w, keys[..kept], p.TopP * mass) : kept;
    }

    /// <summary>The n most likely tokens of the raw distribution, most likely first (ties by id): an insertion pass, n &lt;= 20.</summary>
    private static TokenLogProb[] TopLogProbs(ReadOnlySpan<float> logits, float logSumExp, int n)
    {
        n = Math.Min(n, logits.Length);
        if (n == 0)
        {
            return [];
        }

        var top = new TokenLogProb[n];
        int filled = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float x = logits[i];
            if (filled == n && !(x > top[n - 1].LogProb))
            {
                continue;
            }

            int j = filled < n ? filled++ : n - 1;
            for (; j > 0 && top[j - 1].LogProb < x; j--)
            {
                top[j] = top[j - 1];
            }

            top[j] = new TokenLogProb(i, x);
        }

        for (int j = 0; j < n; j++)
        {
            top[j] = top[j] with { LogProb = top[j].LogProb - logSumExp };
        }

        return top;
    }
}
