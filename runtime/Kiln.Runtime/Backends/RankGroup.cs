using System.Runtime.ExceptionServices;

namespace Kiln.Runtime.Backends;

/// <summary>
/// Runs one step on every rank of a tensor-parallel group, CPU threads or GPUs alike: rank 0 on the caller's thread
/// (it returns the logits), ranks 1..t-1 on their own threads, which read the step's batch from a copy (spans cannot
/// cross threads). <see cref="Run(ForwardBatch, Span{float}, RankZeroStep)"/> runs a step on all of them; <see cref="Run(Action{int})"/> any other work whose ranks meet in collectives.
/// </summary>
public sealed class RankGroup : IDisposable
{
    private readonly RankStep _step;
    private readonly Action _onFailure;
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private readonly CountdownEvent _done;
    private readonly Exception?[] _errors;
    private int[] _batch = [];
    private Action<int>? _work; // set during Run(work): the ranks run it instead of the step
    private int _tokens;
    private int _sequences;
    private volatile bool _stopping;
    private int _firstFailure = -1; // the rank that failed first in this step: the cause; the others' errors follow from the abort

    /// <param name="ranks">Group size, at least 2.</param>
    /// <param name="name">Thread name prefix.</param>
    /// <param name="step">What rank r (1..t-1) does with the step's batch, on its own thread.</param>
    /// <param name="onFailure">Called when a rank fails, so that the others stop waiting for it (a collective's abort).</param>
    public RankGroup(int ranks, string name, RankStep step, Action onFailure)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 2);
        _step = step;
        _onFailure = onFailure;
        _errors = new Exception?[ranks];
        _done = new CountdownEvent(ranks - 1);
        _start = new SemaphoreSlim[ranks - 1];
        _threads = new Thread[ranks - 1];
        for (int r = 1; r < ranks; r++)
        {
            int rank = r;
            _start[r - 1] = new SemaphoreSlim(0);
            _threads[r - 1] = new Thread(() => RankLoop(rank)) { IsBackground = true, Name = $"{name}-{rank}" };
            _threads[r - 1].Start();
        }
    }

    public delegate void RankStep(int rank, ForwardBatch batch);

    /// <summary>Rank 0's part of a step: it alone writes the logits.</summary>
    public delegate void RankZeroStep(ForwardBatch batch, Span<float> logits);

    /// <summary>
    /// Runs a step on every rank: the others on their threads, rank 0 on this one. Returns once all are done; rethrows
    /// rank 0's error as it was, or wraps the first other rank's.
    /// </summary>
    public void Run(ForwardBatch batch, Span<float> logits, RankZeroStep rankZero)
    {
        Start(batch);
        Exception? error = null;
        try
        {
            rankZero(batch, logits);
        }
#pragma warning disable CA1031 // handed to Finish, which rethrows it once the other ranks have stopped
        catch (Exception e)
#pragma warning restore CA1031
        {
            error = RankZeroFailed(e);
        }

        Finish(error);
    }

    /// <summary>
    /// Runs <paramref name="work"/>(rank) on every rank at once, rank 0 on this thread, with a step's failure handling:
    /// for work whose ranks meet in collectives but that is not a forward step (a GPU group's warm-up trials).
    /// </summary>
    public void Run(Action<int> work)
    {
        _work = work;
        try
        {
            Start(default);
            Exception? error = null;
            try
            {
                work(0);
            }
#pragma warning disable CA1031 // handed to Finish, which rethrows it once the other ranks have stopped
            catch (Exception e)
#pragma warning restore CA1031
            {
                error = RankZeroFailed(e);
            }

            Finish(error);
        }
        finally
        {
            _work = null;
        }
    }

    private Exception RankZeroFailed(Exception error)
    {
        Interlocked.CompareExchange(ref _firstFailure, 0, -1);
        return error;
    }

    /// <summary>Copies the step's batch for the other ranks and sets them going.</summary>
    private void Start(ForwardBatch batch)
    {
        _tokens = batch.TokenCount;
        _sequences = batch.SequenceCount;
        int needed = (2 * _tokens) + (2 * _sequences);
        if (_batch.Length < needed)
        {
            _batch = new int[Math.Max(needed * 2, 1024)];
        }

        batch.TokenIds.CopyTo(_batch);
        batch.Positions.CopyTo(_batch.AsSpan(_tokens));
        batch.SequenceIds.CopyTo(_batch.AsSpan(2 * _tokens));
        batch.QueryLengths.CopyTo(_batch.AsSpan((2 * _tokens) + _sequences));
        _done.Reset();
        _firstFailure = -1;
        foreach (var start in _start)
        {
            start.Release();
        }
    }

    /// <summary>
    /// Waits for the other ranks, then reports the rank that failed first (the others fail because of it, in the
    /// collective the abort ended): rank 0's own error as it was, another rank's wrapped.
    /// </summary>
    private void Finish(Exception? rankZeroError)
    {
        if (rankZeroError is not null)
        {
            _onFailure();
        }

        _done.Wait();
        int first = Volatile.Read(ref _firstFailure);
        if (first > 0 && _errors[first] is { } cause)
        {
            throw new InvalidOperationException($"tensor-parallel rank {first} failed: {cause.Message}", cause);
        }

        if (rankZeroError is not null)
        {
            ExceptionDispatchInfo.Throw(rankZeroError);
        }

        foreach (var error in _errors)
        {
            if (error is not null and not OperationCanceledException)
            {
                throw new InvalidOperationException($"a tensor-parallel rank failed: {error.Message}", error);
            }
        }
    }

    private void RankLoop(int rank)
    {
        while (true)
        {
            _start[rank - 1].Wait();
            if (_stopping)
            {
                return;
            }

            _errors[rank] = null;
            try
            {
                var ids = _batch.AsSpan(0, _tokens);
                var positions = _batch.AsSpan(_tokens, _tokens);
                var sequences = _batch.AsSpan(2 * _tokens, _sequences);
                var lengths = _batch.AsSpan((2 * _tokens) + _sequences, _sequences);
                if (_work is { } work)
                {
                    work(rank);
                }
                else
                {
                    _step(rank, new ForwardBatch(ids, positions, sequences, lengths));
                }
            }
#pragma warning disable CA1031 // a rank's failure is handed to the caller's thread by Finish
            catch (Exception e)
#pragma warning restore CA1031
            {
                _errors[rank] = e;
                Interlocked.CompareExchange(ref _firstFailure, rank, -1);
                _onFailure();
            }
            finally
            {
                _done.Signal();
            }
        }
    }

    /// <summary>Stops the rank threads (after the step in flight, if any).</summary>
    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        foreach (var start in _start)
        {
            start.Release();
        }

        foreach (var thread in _threads)
        {
            thread.Join();
        }

        _done.Dispose();
        foreach (var start in _start)
        {
            start.Dispose();
        }
    }
}
