using Kiln.Runtime.Sampling;
using Kiln.Tokenization;

namespace Kiln.Runtime.Engine;

internal enum SequenceStatus
{
    /// <summary>Built on the caller's thread, not yet handed to the scheduler.</summary>
    Created,
    Waiting,
    Running,
    Finished,
}

/// <summary>
/// The state of one sample of a request: its tokens (prompt then output), how many have keys and values in the KV
/// pool, its block table, and its sampling and detokenizing state. The scheduler moves it between queues; nothing
/// here touches tensors. Scheduling one step of a sequence always means computing tokens
/// [ComputedTokens, ComputedTokens + n): a prefill chunk, the rest of a prompt, or the one token sampled last step.
/// </summary>
internal sealed class Sequence
{
    public Sequence(RequestState request, int sampleIndex, IReadOnlyList<int> tokens, int promptLength, long arrival, SamplingState sampling)
    {
        Request = request;
        SampleIndex = sampleIndex;
        Tokens = new List<int>(promptLength + request.MaxTokens);
        Tokens.AddRange(tokens);
        PromptLength = promptLength;
        Arrival = arrival;
        Sampling = sampling;
    }

    public RequestState Request { get; }

    public int SampleIndex { get; }

    public List<int> Tokens { get; }

    public int PromptLength { get; }

    /// <summary>Order of arrival: with <see cref="RequestState.Priority"/>, the scheduling and preemption order.</summary>
    public long Arrival { get; }

    public int ComputedTokens { get; set; }

    public List<int> BlockTable { get; } = [];

    /// <summary>Full blocks already published to the prefix cache.</summary>
    public int CommittedBlocks;

    public SequenceStatus Status { get; set; } = SequenceStatus.Created;

    public SamplingState Sampling { get; }

    public StreamingDecoder? Decoder { get; set; }

    public StopStringMatcher? StopMatcher { get; set; }

    /// <summary>Prompt tokens found in the prefix cache at first admission (reported in usage).</summary>
    public int CachedPromptTokens { get; set; } = -1;

    public int OutputLength => Tokens.Count - PromptLength;

    public int PendingTokens => Tokens.Count - ComputedTokens;

    /// <summary>Goes back to waiting after its blocks were taken: everything is recomputed on resume.</summary>
    public void ResetForRecompute()
    {
        ComputedTokens = 0;
        CommittedBlocks = 0;
        BlockTable.Clear();
        Status = SequenceStatus.Waiting;
    }

    public override string ToString() => $"{Request.Id}#{SampleIndex} ({Tokens.Count} tokens, {ComputedTokens} computed, {Status})";
}
