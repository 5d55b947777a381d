using Kiln.Functions.Api;

namespace Kiln.Functions.Jobs;

/// <summary>
/// Whether a received queue job has started, decided once and atomically against the drain. A job has started when
/// the first token of its engine request reaches the handler (<see cref="IFirstTokenFeature"/>); until then it is
/// pending: its message is being checked, or its request is waiting or prefilling in the engine with no token
/// produced. A drain returns a pending job (<see cref="TryReturn"/>: its run is cancelled and its message goes back
/// to the queue) and lets a started one finish. The engine exposes no finer point: its per-request state is its
/// token stream.
/// </summary>
public sealed class JobStart : IFirstTokenFeature, IDisposable
{
    private const int Pending = 0;
    private const int Started = 1;
    private const int Returned = 2;

    private readonly CancellationTokenSource _run;
    private int _state;

    /// <param name="stopping">Cancels the run whatever its state: the host stopping past the drain.</param>
    public JobStart(CancellationToken stopping) => _run = CancellationTokenSource.CreateLinkedTokenSource(stopping);

    /// <summary>The token to run the job with: cancelled when it is returned or the host stops.</summary>
    public CancellationToken Token => _run.Token;

    public bool HasStarted => Volatile.Read(ref _state) == Started;

    public bool IsReturned => Volatile.Read(ref _state) == Returned;

    public void OnFirstToken() => Interlocked.CompareExchange(ref _state, Started, Pending);

    /// <summary>Returns the job unless it has started (cancelling its run); true when it is returned, now or before.</summary>
    public bool TryReturn()
    {
        int prior = Interlocked.CompareExchange(ref _state, Returned, Pending);
        if (prior == Pending)
        {
            _run.Cancel();
        }

        return prior != Started;
    }

    public void Dispose() => _run.Dispose();
}
