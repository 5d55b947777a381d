namespace Kiln.Gateway;

/// <summary>
/// The calls waiting for a ready pod, counted with their estimated tokens (what the scaler is told). Bounded: a new
/// call past <c>MaxHeldRequests</c> is refused; a call that a pod sent back (503, refused connection) is already in
/// memory and is held again regardless. <see cref="Changed"/> fires when the count leaves or returns to zero.
/// </summary>
public sealed class HeldRequests(int maxHeld)
{
    private readonly Lock _lock = new();
    private int _count;
    private double _tokens;

    /// <summary>Fires (outside the lock) with the new count when it goes from 0 to 1 or from 1 to 0.</summary>
    public event Action<int>? Changed;

    public int MaxHeld { get; } = maxHeld;

    public (int Count, double Tokens) Snapshot()
    {
        lock (_lock)
        {
            return (_count, _tokens);
        }
    }

    /// <summary>Holds a call; null when the bound is reached (unless <paramref name="returned"/>).</summary>
    public Lease? TryHold(double tokens, bool returned)
    {
        int count;
        lock (_lock)
        {
            if (_count >= MaxHeld && !returned)
            {
                return null;
            }

            count = ++_count;
            _tokens += tokens;
        }

        if (count == 1)
        {
            Changed?.Invoke(count);
        }

        return new Lease(this, tokens);
    }

    private void Release(double tokens)
    {
        int count;
        lock (_lock)
        {
            count = --_count;
            _tokens = count == 0 ? 0 : _tokens - tokens; // no drift left behind by float sums
        }

        if (count == 0)
        {
            Changed?.Invoke(count);
        }
    }

    /// <summary>One held call; disposing it releases the slot (once).</summary>
    public sealed class Lease : IDisposable
    {
        private HeldRequests? _owner;
        private readonly double _tokens;

        internal Lease(HeldRequests owner, double tokens) => (_owner, _tokens) = (owner, tokens);

        public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release(_tokens);
    }
}
