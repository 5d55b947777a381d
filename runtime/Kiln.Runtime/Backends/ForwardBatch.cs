namespace Kiln.Runtime.Backends;

/// <summary>
/// One step's work for the model, as flat arrays that map straight onto a kernel ABI. Sequence s owns the
/// QueryLengths[s] consecutive tokens after those of sequences 0..s-1 (a prefill chunk, or one decode token), and its
/// keys and values live in the KV cache under SequenceIds[s]. Positions[t] is token t's position in its sequence; the
/// cache must already hold that sequence's positions before the step's first token.
/// </summary>
public readonly ref struct ForwardBatch(ReadOnlySpan<int> tokenIds, ReadOnlySpan<int> positions, ReadOnlySpan<int> sequenceIds, ReadOnlySpan<int> queryLengths)
{
    public ReadOnlySpan<int> TokenIds { get; } = tokenIds;

    public ReadOnlySpan<int> Positions { get; } = positions;

    public ReadOnlySpan<int> SequenceIds { get; } = sequenceIds;

    public ReadOnlySpan<int> QueryLengths { get; } = queryLengths;

    public int TokenCount => TokenIds.Length;

    public int SequenceCount => SequenceIds.Length;

    /// <summary>
    /// Checks the batch against a model and a runner's limits, and writes each token's sequence (its block-table row)
    /// into <paramref name="tokenSequences"/>. Returns the token count. Every backend calls this before it touches memory.
    /// </summary>
    public static int Validate(ForwardBatch batch, Models.ModelConfig config, int maxTokens, int maxContext, Span<int> tokenSequences)
    {
        int tokens = batch.TokenCount;
        if (tokens == 0 || tokens > maxTokens)
        {
            throw new ArgumentException($"a step holds 1 to {maxTokens} tokens, not {tokens}", nameof(batch));
        }

        if (batch.Positions.Length != tokens || batch.QueryLengths.Length != batch.SequenceCount || batch.SequenceCount == 0)
        {
            throw new ArgumentException("token ids, positions and per-sequence lengths disagree in length", nameof(batch));
        }

        int t = 0;
        for (int s = 0; s < batch.SequenceCount; s++)
        {
            int length = batch.QueryLengths[s];
            if (length <= 0 || t + length > tokens)
            {
                throw new ArgumentException($"sequence {s} has {length} tokens, which does not fit the batch", nameof(batch));
            }

            for (int i = 0; i < length; i++, t++)
            {
                int id = batch.TokenIds[t];
                int position = batch.Positions[t];
                if ((uint)id >= (uint)config.VocabSize)
                {
                    throw new ArgumentOutOfRangeException(nameof(batch), $"token id {id} is outside the vocabulary (0..{config.VocabSize - 1})");
                }

                if ((uint)position >= (uint)maxContext)
                {
                    throw new ArgumentOutOfRangeException(nameof(batch), $"position {position} is outside the context of {maxContext}");
                }

                tokenSequences[t] = batch.SequenceIds[s];
            }
        }

        if (t != tokens)
        {
            throw new ArgumentException($"per-sequence lengths add up to {t}, but the batch has {tokens} tokens", nameof(batch));
        }

        return tokens;
    }
}
