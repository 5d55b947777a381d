using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Engine;

/// <summary>
/// Turns a sequence's logits into its next token and the events its caller sees: sampling (the scheduler forks the
/// parallel samples first), incremental detokenization, stop tokens and stop strings, max tokens, and usage when the request completes.
/// Runs on the engine thread.
/// </summary>
internal sealed class OutputProcessor(
    Scheduler scheduler,
    Sampler sampler,
    IReadOnlyList<int> eosTokenIds,
    int maxModelLength,
    Func<Kiln.Tokenization.StreamingDecoder>? newDecoder)
{
    private long _finishedStop;
    private long _finishedLength;
    private long _finishedAborted;

    public long CompletedRequests => FinishedStop + FinishedLength + FinishedAborted;

    /// <summary>Requests whose last sample stopped on EOS, a stop token or a stop string (read from any thread).</summary>
    public long FinishedStop => Volatile.Read(ref _finishedStop);

    /// <summary>Requests whose last sample reached max_tokens or the context.</summary>
    public long FinishedLength => Volatile.Read(ref _finishedLength);

    /// <summary>Requests cancelled (the caller went away, a stalled reader) or failed.</summary>
    public long FinishedAborted => Volatile.Read(ref _finishedAborted);

    public long OutputTokens { get; private set; }

    /// <summary>The sequence's pending tokens were all computed: sample from its logits row.</summary>
    public void OnLogits(Sequence sequence, ReadOnlySpan<float> logits)
    {
        var request = sequence.Request;
        if (!request.Forked && request.Sampling.N > 1)
        {
            // Parallel sampling: the other samples fork from this one and draw their first token from the same logits.
            scheduler.Fork(sequence, newDecoder);
            for (int k = 1; k < request.Sequences.Count; k++)
            {
                SampleOne(request.Sequences[k], logits);
            }
        }

        SampleOne(sequence, logits);
    }

    private void SampleOne(Sequence sequence, ReadOnlySpan<float> logits)
    {
        var request = sequence.Request;
        var p = request.Sampling;
        if (sequence.OutputLength == 0 && sequence.SampleIndex == 0)
        {
            request.CachedPromptTokens = Math.Max(0, sequence.CachedPromptTokens);
        }

        Emit(sequence, sampler.Sample(logits, p, sequence.Sampling));
    }

    /// <summary>
    /// The backend already drew the sequence's next token (on the device, see <see cref="DeviceSampling.Allows"/>):
    /// record it and emit it. Its log-probability was not computed (NaN); no such request asked for one.
    /// </summary>
    public void OnToken(Sequence sequence, int tokenId)
    {
        sequence.Sampling.Record(tokenId);
        Emit(sequence, new SampledToken(tokenId, float.NaN, null));
    }

    private void Emit(Sequence sequence, SampledToken token)
    {
        var request = sequence.Request;
        var p = request.Sampling;
        sequence.Tokens.Add(token.Id);
        request.CompletionTokens++;
        OutputTokens++;

        bool stopToken = (!p.IgnoreEos && Contains(eosTokenIds, token.Id)) || Contains(p.StopTokenIds, token.Id);
        string text = stopToken ? string.Empty : sequence.Decoder?.Append(token.Id) ?? string.Empty;
        FinishReason? finish = stopToken ? FinishReason.Stop : null;
        if (sequence.StopMatcher is { } matcher)
        {
            var check = matcher.Append(text);
            text = check.Text;
            if (check.Stopped)
            {
                finish = FinishReason.Stop;
            }
        }

        if (finish is null && (sequence.OutputLength >= request.MaxTokens || sequence.Tokens.Count >= maxModelLength))
        {
            finish = FinishReason.Length;
        }

        if (finish is not null && !(sequence.StopMatcher?.Stopped ?? false))
        {
            // Nothing more will come: release what the decoder and the stop matcher held back.
            string tail = sequence.Decoder?.Flush() ?? string.Empty;
            text += sequence.StopMatcher is { } m ? m.Append(tail).Text + m.Flush() : tail;
        }

        Usage? usage = null;
        if (finish is not null)
        {
            scheduler.Finish(sequence);
            request.SamplesLeft--;
            if (request.IsDone)
            {
                usage = new Usage(request.PromptLength, request.CachedPromptTokens, request.CompletionTokens);
            }
        }

        request.Write(new TokenEvent(sequence.SampleIndex, token.Id, text, token.LogProb, token.TopLogProbs, finish, usage));
        if (usage is not null)
        {
            Interlocked.Increment(ref finish == FinishReason.Length ? ref _finishedLength : ref _finishedStop);
            Complete(request, null);
        }
    }

    /// <summary>Ends a request early (cancelled or failed), freeing every block its samples hold.</summary>
    public void Abort(RequestState request, Exception? error)
    {
        if (request.IsDone)
        {
            return;
        }

        foreach (var sequence in request.Sequences)
        {
            if (sequence.Status != SequenceStatus.Finished)
            {
                scheduler.Finish(sequence);
                if (error is null)
                {
                    request.Write(new TokenEvent(sequence.SampleIndex, -1, string.Empty, 0, null, FinishReason.Cancelled, null));
                }
            }
        }

        request.SamplesLeft = 0;
        Interlocked.Increment(ref _finishedAborted);
        Complete(request, error);
    }

    private void Complete(RequestState request, Exception? error)
    {
        request.Complete(error);
    }

    private static bool Contains(IReadOnlyList<int>? ids, int id)
    {
        if (ids is null)
        {
            return false;
        }

        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i] == id)
            {
                return true;
            }
        }

        return false;
    }
}
