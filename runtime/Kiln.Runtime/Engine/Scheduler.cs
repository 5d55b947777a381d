using System.Runtime.InteropServices;
using Kiln.Runtime.Kv;

namespace Kiln.Runtime.Engine;

/// <summary>
/// The policy: which sequences run in the next step and how many of their tokens. Continuous batching at the level
/// of iterations, as vLLM's unified scheduler: running sequences go first, in priority order, each with all its
/// pending tokens (one for a decode, the rest of a prompt for a chunked prefill) until the token budget is spent;
/// then waiting sequences are admitted while blocks, budget and the sequence cap allow, their prompts chunked to the
/// budget that is left. When a running sequence needs a block and none is free, the lowest-priority, newest running
/// sequence is preempted: its blocks are freed and it is recomputed later. A request of n samples is admitted only
/// when n running slots are free (its samples fork at the first token), so the sequence cap holds for every sample;
/// a running request whose caller stopped reading is skipped (its blocks kept) until the caller reads again.
/// </summary>
internal sealed class Scheduler
{
    private readonly BlockManager _blocks;
    private readonly int _maxBatchedTokens;
    private readonly int _maxSequences;
    private readonly WaitingQueue _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly Dictionary<string, int> _runningByCaller = new(StringComparer.Ordinal);
    private readonly Func<string, int> _runningOf;
    private readonly ScheduledStep _step;
    private int _liveWaiting; // waiting sequences not cancelled (cancelled ones leave the queue lazily)
    private int _reservedForks; // running slots held for the samples of admitted requests that have not forked yet

    public Scheduler(BlockManager blocks, int maxBatchedTokens, int maxSequences, int blockTableStride)
    {
        _blocks = blocks;
        _maxBatchedTokens = maxBatchedTokens;
        _maxSequences = maxSequences;
        _step = new ScheduledStep(maxBatchedTokens, maxSequences, blockTableStride);
        _runningOf = caller => _runningByCaller.GetValueOrDefault(caller);
    }

    public int WaitingCount => _liveWaiting;

    public int RunningCount => _running.Count;

    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    public IReadOnlyList<Sequence> Running => _running;

    public long Preemptions { get; private set; }

    /// <summary>Prompt tokens of requests admitted for the first time (vLLM's prompt tokens and prefix-cache queries).</summary>
    public long PromptTokensAdmitted { get; private set; }

    /// <summary>Of those, the tokens found in the prefix cache (vLLM's prefix-cache hits).</summary>
    public long PromptTokensCached { get; private set; }

    public void AddWaiting(Sequence sequence)
    {
        sequence.Status = SequenceStatus.Waiting;
        _waiting.Enqueue(sequence);
        _liveWaiting++;
    }

    /// <summary>
    /// Parallel sampling, once the first sample's prompt is computed: samples 1..n-1 join it, sharing its blocks
    /// (copy-on-write on their first append) and its computed tokens, each running in a slot held for it since the
    /// request was admitted.
    /// </summary>
    public void Fork(Sequence first, Func<Kiln.Tokenization.StreamingDecoder>? newDecoder)
    {
        var request = first.Request;
        request.Forked = true;
        for (int k = 1; k < request.Sampling.N; k++)
        {
            var child = new Sequence(request, k, first.Tokens, first.PromptLength, first.Arrival, new Sampling.SamplingState(request.Sampling, k))
            {
                ComputedTokens = first.ComputedTokens,
                CommittedBlocks = first.CommittedBlocks,
                CachedPromptTokens = first.CachedPromptTokens,
                Decoder = newDecoder?.Invoke(),
                StopMatcher = request.Sampling.Stop is { Length: > 0 } stops ? new Sampling.StopStringMatcher(stops) : null,
            };
            child.Sampling.ObservePrompt(CollectionsMarshal.AsSpan(first.Tokens)[..first.PromptLength]);
            _blocks.Fork(first.BlockTable, child.BlockTable);
            request.Sequences.Add(child);
            child.Status = SequenceStatus.Running;
            _reservedForks--;
            InsertRunning(child);
        }
    }

    public ScheduledStep Schedule()
    {
        var step = _step;
        step.Clear();
        int budget = _maxBatchedTokens;

        // Running sequences first, most important first; a preemption victim is always taken from the end.
        for (int i = 0; i < _running.Count && budget > 0 && step.Sequences.Count < _maxSequences; i++)
        {
            var sequence = _running[i];
            if (sequence.Request.OutputFull)
            {
                continue; // its caller has not read what it has: generate no more for it until it does
            }

            if (!MakeRoomToAppend(sequence))
            {
                break; // the sequence itself was preempted: everything after it is less important
            }

            if (_blocks.PrepareAppend(sequence.Tokens.Count, sequence.BlockTable) is { } copy)
            {
                step.BlockCopies.Add(copy);
            }

            int count = Math.Min(sequence.PendingTokens, budget);
            step.Add(sequence, count);
            budget -= count;
        }

        // Then admit waiting sequences in priority order while everything fits; stop at the first that does not,
        // so a large request is not starved by smaller ones behind it.
        while (budget > 0 && _running.Count + _reservedForks < _maxSequences && _waiting.TryPeek(_runningOf, out var next))
        {
            // Samples not yet forked take their slots now: the fork adds them as running without asking.
            int slots = next.Request.Forked ? 1 : next.Request.Sampling.N;
            if (_running.Count + _reservedForks + slots > _maxSequences || !_blocks.CanAllocate(CollectionsMarshal.AsSpan(next.Tokens)))
            {
                break;
            }

            _waiting.Dequeue(next);
            _liveWaiting--;
            int cached = _blocks.Allocate(CollectionsMarshal.AsSpan(next.Tokens), next.BlockTable);
            next.ComputedTokens = cached;
            if (next.CachedPromptTokens < 0)
            {
                next.CachedPromptTokens = Math.Min(cached, next.PromptLength);
                PromptTokensAdmitted += next.PromptLength;
                PromptTokensCached += next.CachedPromptTokens;
            }

            next.Status = SequenceStatus.Running;
            _reservedForks += slots - 1;
            InsertRunning(next);
            int count = Math.Min(next.PendingTokens, budget);
            step.Add(next, count);
            budget -= count;
        }

        return step;
    }

    /// <summary>After the step ran: the scheduled tokens have keys and values; publish newly full blocks.</summary>
    public void Computed(Sequence sequence, int count)
    {
        sequence.ComputedTokens += count;
        _blocks.CommitFullBlocks(CollectionsMarshal.AsSpan(sequence.Tokens), sequence.BlockTable, sequence.ComputedTokens, ref sequence.CommittedBlocks);
    }

    /// <summary>Removes a finished or cancelled sequence and returns its blocks to the pool at once.</summary>
    public void Finish(Sequence sequence)
    {
        if (sequence.Status == SequenceStatus.Running)
        {
            _running.Remove(sequence);
            CountRunning(sequence, -1);
            ReleaseForks(sequence);
        }
        else if (sequence.Status == SequenceStatus.Waiting)
        {
            _liveWaiting--; // it stays in the queue until it reaches the head, marked finished
        }

        _blocks.Free(sequence.BlockTable);
        sequence.Status = SequenceStatus.Finished;
    }

    /// <summary>Frees blocks by preempting the least important running sequences until this one can append.</summary>
    private bool MakeRoomToAppend(Sequence sequence)
    {
        while (!_blocks.CanAppend(sequence.Tokens.Count, sequence.BlockTable))
        {
            var victim = _running[^1];
            Preempt(victim);
            if (ReferenceEquals(victim, sequence))
            {
                return false;
            }
        }

        return true;
    }

    private void Preempt(Sequence victim)
    {
        _running.RemoveAt(_running.Count - 1);
        CountRunning(victim, -1);
        ReleaseForks(victim);
        _blocks.Free(victim.BlockTable);
        victim.ResetForRecompute();
        Preemptions++;
        AddWaiting(victim);
    }

    private void InsertRunning(Sequence sequence)
    {
        // Sorted by (priority, arrival): the most important first, the preemption victim last.
        int i = _running.Count;
        while (i > 0 && Compare(_running[i - 1], sequence) > 0)
        {
            i--;
        }

        _running.Insert(i, sequence);
        CountRunning(sequence, 1);
    }

    /// <summary>A request's first sample leaves the running set before its samples forked: the slots held for them are free.</summary>
    private void ReleaseForks(Sequence sequence)
    {
        if (!sequence.Request.Forked)
        {
            _reservedForks -= sequence.Request.Sampling.N - 1;
        }
    }

    private void CountRunning(Sequence sequence, int delta)
    {
        string caller = sequence.Request.Caller;
        int count = _runningByCaller.GetValueOrDefault(caller) + delta;
        if (count == 0)
        {
            _runningByCaller.Remove(caller); // callers come and go (client addresses): keep only those running
        }
        else
        {
            _runningByCaller[caller] = count;
        }
    }

    private static int Compare(Sequence a, Sequence b) =>
        a.Request.Priority != b.Request.Priority ? a.Request.Priority.CompareTo(b.Request.Priority) : a.Arrival.CompareTo(b.Arrival);
}
