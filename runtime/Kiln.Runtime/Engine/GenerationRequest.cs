using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Engine;

/// <summary>What a caller asks the engine for: a prompt (text or token ids) and how to sample its continuation.</summary>
public sealed record GenerationRequest
{
    /// <summary>Prompt text, encoded with the model's tokenizer (with its BOS when <see cref="AddSpecialTokens"/>).</summary>
    public string? Prompt { get; init; }

    /// <summary>Prompt token ids, used as given; takes precedence over <see cref="Prompt"/>.</summary>
    public IReadOnlyList<int>? PromptTokenIds { get; init; }

    public bool AddSpecialTokens { get; init; } = true;

    public SamplingParams Sampling { get; init; } = new();

    /// <summary>Lower runs sooner and is preempted later (vLLM's convention). Interactive HTTP calls use 0, queue jobs more.</summary>
    public int Priority { get; init; }

    /// <summary>
    /// Who asks: an API key's id, a client's address. Running slots are shared fairly among callers, and
    /// <see cref="EngineOptions.MaxSequencesPerCaller"/> bounds each; null is one anonymous caller.
    /// </summary>
    public string? Caller { get; init; }

    /// <summary>The caller's id for logs; the engine assigns its own otherwise.</summary>
    public string? RequestId { get; init; }
}

/// <summary>Why a sample stopped, in OpenAI's terms where they exist.</summary>
public enum FinishReason
{
    /// <summary>An end-of-sequence token, a stop token id or a stop string.</summary>
    Stop,

    /// <summary>max_tokens, or the context length, was reached.</summary>
    Length,

    /// <summary>The caller went away.</summary>
    Cancelled,
}

/// <summary>Token counts of a finished request.</summary>
public sealed record Usage(int PromptTokens, int CachedPromptTokens, int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// One event of a request's stream. A token event carries the sampled id (or -1 when only trailing text is flushed),
/// the text it completes (possibly empty while UTF-8 is partial or a stop string is undecided) and its log-probability.
/// The last event of each sample has <see cref="FinishReason"/>; the last event of the request also has <see cref="Usage"/>.
/// </summary>
public readonly record struct TokenEvent(
    int SampleIndex,
    int TokenId,
    string Text,
    float LogProb,
    IReadOnlyList<TokenLogProb>? TopLogProbs,
    FinishReason? FinishReason,
    Usage? Usage);

/// <summary>Thrown by <see cref="InferenceEngine.Submit"/> when the waiting queue is full: the HTTP layer answers 429.</summary>
public sealed class EngineOverloadedException : Exception
{
    public EngineOverloadedException()
        : base("the engine is overloaded: its waiting queue is full; retry later")
    {
    }

    public EngineOverloadedException(string message)
        : base(message)
    {
    }

    public EngineOverloadedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>A prompt that, with the requested output, does not fit the model's context: the HTTP layer answers 400 context_length_exceeded.</summary>
public sealed class ContextLengthExceededException : ArgumentException
{
    public ContextLengthExceededException()
        : base("the prompt does not fit the context length")
    {
    }

    public ContextLengthExceededException(string message)
        : base(message)
    {
    }

    public ContextLengthExceededException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
