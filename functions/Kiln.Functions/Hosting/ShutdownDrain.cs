namespace Kiln.Functions.Hosting;

/// <summary>
/// The pod's drain on scale-down: begun once when the host starts stopping (SIGTERM), after which no new work is
/// taken (<see cref="TryEnter"/> answers null) while the work already entered is counted until it leaves, so the stop
/// can wait for <see cref="Idle"/> before the engine goes away. Work is an inference call or the queue poller's loop.
/// </summary>
public sealed class ShutdownDrain : IDisposable
{
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _draining = new();
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private bool _begun;

    /// <summary>True once the drain has begun: readiness and stats say "draining", new calls get 503.</summary>
    public bool IsDraining
    {
        get
        {
            lock (_gate)
            {
                return _begun;
            }
        }
    }

    /// <summary>Cancelled when the drain begins (after <see cref="IsDraining"/> turns true): stops the queue poller's receiving.</summary>
    public CancellationToken Draining => _draining.Token;

    /// <summary>Work entered and not yet left.</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _inFlight;
            }
        }
    }

    /// <summary>Completes once the drain has begun and no entered work is left.</summary>
    public Task Idle => _idle.Task;

    /// <summary>Counts one unit of work until the returned lease is disposed; null once draining (refuse the work).</summary>
    public IDisposable? TryEnter()
    {
        lock (_gate)
        {
            if (_begun)
            {
                return null;
            }

            _inFlight++;
        }

        return new Lease(this);
    }

    /// <summary>Begins the drain (idempotent): from now on nothing new enters.</summary>
    public void Begin()
    {
        lock (_gate)
        {
            if (_begun)
            {
                return;
            }

            _begun = true;
            if (_inFlight == 0)
            {
                _idle.TrySetResult();
            }
        }

        _draining.Cancel();
    }

    public void Dispose() => _draining.Dispose();

    private void Leave()
    {
        lock (_gate)
        {
            _inFlight--;
            if (_begun && _inFlight == 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    private sealed class Lease(ShutdownDrain drain) : IDisposable
    {
        private int _left;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _left, 1) == 0)
            {
                drain.Leave();
            }
        }
    }
}
