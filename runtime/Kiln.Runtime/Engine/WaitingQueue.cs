namespace Kiln.Runtime.Engine;

/// <summary>
/// The sequences waiting for admission, one queue per caller. The next to admit is the head, among callers, with the
/// lowest (priority, the caller's running sequences, when the caller was last admitted, arrival): priority first, as
/// vLLM's scheduler; then the caller with the fewest sequences running, and among equals the one served longest ago,
/// so a caller who floods the queue takes turns with one who asks once, however early the flood arrived (a fair share
/// of the running slots); then arrival. Cancelled sequences leave lazily at their queue's head.
/// </summary>
internal sealed class WaitingQueue
{
    private readonly Dictionary<string, CallerQueue> _byCaller = new(StringComparer.Ordinal);
    private readonly Stack<CallerQueue> _spare = new();
    private long _admissions;

    /// <summary>Sequences queued, cancelled ones included until they reach their queue's head.</summary>
    public int Count { get; private set; }

    public void Enqueue(Sequence sequence)
    {
        string caller = sequence.Request.Caller;
        if (!_byCaller.TryGetValue(caller, out var queue))
        {
            queue = _spare.Count > 0 ? _spare.Pop() : new CallerQueue();
            _byCaller.Add(caller, queue);
        }

        queue.Sequences.Enqueue(sequence, (sequence.Request.Priority, sequence.Arrival));
        Count++;
    }

    /// <summary>The next sequence to admit, given each caller's running count; cancelled heads are dropped on the way.</summary>
    public bool TryPeek(Func<string, int> runningOf, out Sequence next)
    {
        next = null!;
        (int Priority, int Running, long LastAdmitted, long Arrival) best = default;
        string? emptied = null;
        foreach (var (caller, queue) in _byCaller)
        {
            Sequence? head;
            while (queue.Sequences.TryPeek(out head, out _) && head.Status == SequenceStatus.Finished)
            {
                queue.Sequences.Dequeue();
                Count--;
            }

            if (head is null || queue.Sequences.Count == 0)
            {
                if (runningOf(caller) == 0)
                {
                    emptied ??= caller; // removed after the loop (one a call keeps the table small); a running caller keeps its turn
                }

                continue;
            }

            (int, int, long, long) key = (head.Request.Priority, runningOf(caller), queue.LastAdmitted, head.Arrival);
            if (next is null || key.CompareTo(best) < 0)
            {
                next = head;
                best = key;
            }
        }

        if (emptied is not null)
        {
            var queue = _byCaller[emptied];
            queue.LastAdmitted = 0; // a caller with nothing waiting or running starts afresh
            _spare.Push(queue);
            _byCaller.Remove(emptied);
        }

        return next is not null;
    }

    /// <summary>Removes <paramref name="sequence"/>, the head <see cref="TryPeek"/> returned.</summary>
    public void Dequeue(Sequence sequence)
    {
        var queue = _byCaller[sequence.Request.Caller];
        var head = queue.Sequences.Dequeue();
        System.Diagnostics.Debug.Assert(ReferenceEquals(head, sequence), "only the peeked head is dequeued");
        queue.LastAdmitted = ++_admissions;
        Count--;
    }

    private sealed class CallerQueue
    {
        public PriorityQueue<Sequence, (int Priority, long Arrival)> Sequences { get; } = new();

        public long LastAdmitted { get; set; }
    }
}
