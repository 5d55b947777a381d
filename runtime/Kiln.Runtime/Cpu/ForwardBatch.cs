namespace Kiln.Runtime.Cpu;

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

}
