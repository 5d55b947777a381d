using System.Collections.Concurrent;

namespace Kiln.Runtime.Engine;

/// <summary>
/// The engine's admission bound, in sequences (every sample of every request): at most <c>capacity</c> in the engine
/// at once (the running slots plus the waiting queue) and at most <c>perCaller</c> for one caller. A call of several
/// requests reserves all its sequences in one step, so it is admitted whole or refused whole, and a refusal leaves
/// nothing behind. Thread-safe; places come back when each request ends (<see cref="Release"/>).
/// </summary>
internal sealed class Admission(int capacity, int perCaller)
{
    private readonly ConcurrentDictionary<string, int> _byCaller = new(StringComparer.Ordinal);
    private int _outstanding;

    /// <summary>Sequences admitted and not yet ended.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>A call that could never be admitted, however idle the engine: a client error, not an overload.</summary>
    public void Validate(int sequences)
    {
        if (sequences > capacity)
        {
            throw TooMany("n", $"this call asks for {sequences} sequences (prompts times n); the engine takes at most {capacity} at once");
        }

        if (perCaller > 0 && sequences > perCaller)
        {
            throw TooMany("n", $"this call asks for {sequences} sequences (prompts times n); one caller may have at most {perCaller} at once");
        }
    }

    /// <summary>Takes <paramref name="sequences"/> places for <paramref name="caller"/>, or throws <see cref="EngineOverloadedException"/> and takes none.</summary>
    public void Reserve(string caller, int sequences)
    {
        int current;
        do
        {
            current = Volatile.Read(ref _outstanding);
            if (current + sequences > capacity)
            {
                throw new EngineOverloadedException($"the engine is overloaded: {current} sequences are already running or waiting of the {capacity} it takes; retry later");
            }
        }
        while (Interlocked.CompareExchange(ref _outstanding, current + sequences, current) != current);

        if (perCaller > 0 && !TryReserveForCaller(caller, sequences, out int held))
        {
            Interlocked.Add(ref _outstanding, -sequences);
            throw new EngineOverloadedException($"this caller already has {held} sequences running or waiting, and one caller may have at most {perCaller}; retry later");
        }
    }

    public void Release(string caller, int sequences)
    {
        Interlocked.Add(ref _outstanding, -sequences);
        if (perCaller == 0)
        {
            return;
        }

        while (_byCaller.TryGetValue(caller, out int held))
        {
            bool done = held == sequences
                ? _byCaller.TryRemove(new KeyValuePair<string, int>(caller, held)) // keep only callers with work: addresses come and go
                : _byCaller.TryUpdate(caller, held - sequences, held);
            if (done)
            {
                return;
            }
        }
    }

    /// <summary>The error names the OpenAI parameter that sets the count (the HTTP layer reports it as such).</summary>
    public static ArgumentException TooMany(string parameter, string message) => new(message, parameter);

    private bool TryReserveForCaller(string caller, int sequences, out int held)
    {
        while (true)
        {
            if (_byCaller.TryGetValue(caller, out held))
            {
                if (held + sequences > perCaller)
                {
                    return false;
                }

                if (_byCaller.TryUpdate(caller, held + sequences, held))
                {
                    return true;
                }
            }
            else if (_byCaller.TryAdd(caller, sequences))
            {
                held = 0;
                return true;
            }
        }
    }
}
