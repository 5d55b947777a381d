namespace Kiln.Runtime.Sampling;

/// <summary>
/// How one request's tokens are chosen and when it stops, in vLLM/OpenAI terms. Immutable and shared by all of a
/// request's samples; the mutable per-sequence part lives in <see cref="SamplingState"/>. Arrays compare by reference
/// in the record's equality.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>Below this temperature sampling is greedy, as in vLLM (dividing by a tinier one only overflows).</summary>
    public const float GreedyTemperature = 1e-5f;

    /// <summary>OpenAI allows at most this many stop strings.</summary>
    public const int MaxStopStrings = 4;

    /// <summary>OpenAI's and vLLM's bound on <see cref="LogProbs"/>.</summary>
    public const int MaxLogProbs = 20;

    /// <summary>Divides the logits after penalties; 0 is greedy.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches this; 1 is off.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Keep only the K most likely tokens; 0 is off.</summary>
    public int TopK { get; init; }

    /// <summary>Drop tokens less likely than MinP times the most likely one; 0 is off.</summary>
    public float MinP { get; init; }

    /// <summary>HF/vLLM: logits of tokens seen in the prompt or output are divided by it when positive, multiplied when negative; 1 is off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>OpenAI: subtracted once from the logit of every token already in the output.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>OpenAI: subtracted from a token's logit once per time it is already in the output.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Makes sampling reproducible whatever else shares the batch; null draws a random seed.</summary>
    public ulong? Seed { get; init; }

    /// <summary>How many tokens to generate at most; null runs to the context limit.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Token ids that end the sequence (besides EOS unless <see cref="IgnoreEos"/>).</summary>
    public int[] StopTokenIds { get; init; } = [];

    /// <summary>Strings that end the sequence; they are not part of the output (see <see cref="StopStringMatcher"/>).</summary>
    public string[] Stop { get; init; } = [];

    /// <summary>How many samples to draw for the prompt.</summary>
    public int N { get; init; } = 1;

    /// <summary>How many most likely alternatives to return with each token; null returns none.</summary>
    public int? LogProbs { get; init; }

    /// <summary>Keep generating after EOS (benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    public static SamplingParams Greedy { get; } = new() { Temperature = 0 };

    public bool IsGreedy => Temperature < GreedyTemperature;

    /// <summary>Throws for any value a server should reject, naming the parameter as the OpenAI API does.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature))
        {
            throw Invalid("temperature", Temperature, "must be a finite number >= 0");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw Invalid("top_p", TopP, "must be in (0, 1]");
        }

        if (TopK < 0)
        {
            throw Invalid("top_k", TopK, "must be >= 0 (0 disables it)");
        }

        if (!(MinP >= 0 && MinP <= 1))
        {
            throw Invalid("min_p", MinP, "must be in [0, 1]");
        }

        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty))
        {
            throw Invalid("repetition_penalty", RepetitionPenalty, "must be a finite number > 0");
        }

        if (!(PresencePenalty >= -2 && PresencePenalty <= 2))
        {
            throw Invalid("presence_penalty", PresencePenalty, "must be in [-2, 2]");
        }

        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2))
        {
            throw Invalid("frequency_penalty", FrequencyPenalty, "must be in [-2, 2]");
        }

        if (MaxTokens is < 1)
        {
            throw Invalid("max_tokens", MaxTokens, "must be >= 1");
        }

        if (N < 1)
        {
            throw Invalid("n", N, "must be >= 1");
        }

        if (LogProbs is < 0 or > MaxLogProbs)
        {
            throw Invalid("logprobs", LogProbs, $"must be in [0, {MaxLogProbs}]");
        }

        ValidateStops();
    }

    private void ValidateStops()
    {
        if (StopTokenIds is null)
        {
            throw new ArgumentException("stop_token_ids must not be null", "stop_token_ids");
        }

        foreach (int id in StopTokenIds)
        {
            if (id < 0)
            {
                throw Invalid("stop_token_ids", id, "token ids must be >= 0");
            }
        }

        if (Stop is null)
        {
            throw new ArgumentException("stop must not be null", "stop");
        }

        if (Stop.Length > MaxStopStrings)
        {
            throw Invalid("stop", Stop.Length, $"at most {MaxStopStrings} stop strings are allowed");
        }

        foreach (string? s in Stop)
        {
            if (string.IsNullOrEmpty(s))
            {
                throw new ArgumentException("stop strings must not be empty", "stop");
            }
        }
    }

    private static ArgumentOutOfRangeException Invalid(string name, object? value, string rule) => new(name, value, $"{name} {rule}");
}
