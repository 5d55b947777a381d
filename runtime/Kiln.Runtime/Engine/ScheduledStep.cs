namespace Kiln.Runtime.Engine;

/// <summary>
/// One step's plan, as flat arrays that map straight onto a kernel ABI (vLLM's input metadata): token ids, positions,
/// per-sequence query lengths, block tables ([sequences x BlockTableStride]), and the copy-on-write block copies to
/// do first. A runner finds each sequence's context length from its positions, so none is passed. Buffers are sized once and reused every step.
/// </summary>
internal sealed class ScheduledStep
{
    public ScheduledStep(int maxTokens, int maxSequences, int blockTableStride)
    {
        TokenIds = new int[maxTokens];
        Positions = new int[maxTokens];
        SequenceRows = new int[maxSequences];
        QueryLengths = new int[maxSequences];
        BlockTables = new int[maxSequences * blockTableStride];
        BlockTableStride = blockTableStride;
        for (int i = 0; i < maxSequences; i++)
        {
            SequenceRows[i] = i;
        }
    }

    public int[] TokenIds { get; }

    public int[] Positions { get; }

    /// <summary>0..n-1: sequence s of the step reads row s of the block tables.</summary>
    public int[] SequenceRows { get; }

    public int[] QueryLengths { get; }

    public int[] BlockTables { get; }

    public int BlockTableStride { get; }

    public List<Sequence> Sequences { get; } = [];

    public List<(int Source, int Destination)> BlockCopies { get; } = [];

    public int TokenCount { get; private set; }

    public int PrefillTokens { get; private set; }

    public bool IsEmpty => Sequences.Count == 0;

    public void Clear()
    {
        Sequences.Clear();
        BlockCopies.Clear();
        TokenCount = 0;
        PrefillTokens = 0;
    }

    /// <summary>Adds tokens [ComputedTokens, ComputedTokens + count) of the sequence.</summary>
    public void Add(Sequence sequence, int count)
    {
        int row = Sequences.Count;
        Sequences.Add(sequence);
        int start = sequence.ComputedTokens;
        for (int i = 0; i < count; i++)
        {
            TokenIds[TokenCount + i] = sequence.Tokens[start + i];
            Positions[TokenCount + i] = start + i;
        }

        QueryLengths[row] = count;
        var table = sequence.BlockTable;
        for (int b = 0; b < table.Count; b++)
        {
            BlockTables[(row * BlockTableStride) + b] = table[b];
        }

        TokenCount += count;
        bool decode = count == 1 && start >= sequence.PromptLength;
        PrefillTokens += decode ? 0 : count;
    }
}
