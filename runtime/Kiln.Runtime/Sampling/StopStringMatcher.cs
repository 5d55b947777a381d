namespace Kiln.Runtime.Sampling;

/// <summary>What one decoded piece released: text safe to stream now and, once one matched, the stop string (vLLM's stop_reason).</summary>
public readonly record struct StopCheck(string Text, string? StopString)
{
    public bool Stopped => StopString is not null;
}

/// <summary>
/// Finds OpenAI-style stop strings in one sequence's streamed text. A stop string may arrive split over several tokens,
/// so text that could still turn out to begin one is held back until the next pieces settle it; the stop string and
/// everything after it are never released. The first stop string to complete wins (on a tie, the one that starts
/// earlier), which makes the result the same however the text is split into pieces.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly int _longest;
    private string _held = string.Empty;

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        _stops = [.. stops];
        foreach (string? stop in _stops)
        {
            if (string.IsNullOrEmpty(stop))
            {
                throw new ArgumentException("stop strings must not be empty", nameof(stops));
            }

            _longest = Math.Max(_longest, stop.Length);
        }
    }

    /// <summary>The stop string that ended the text, or null while none has.</summary>
    public string? StopString { get; private set; }

    public bool Stopped => StopString is not null;

    /// <summary>The text held back because it may begin a stop string.</summary>
    public string Held => _held;

    /// <summary>Feeds the next decoded piece; after a stop everything is swallowed.</summary>
    public StopCheck Append(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (Stopped)
        {
            return new StopCheck(string.Empty, StopString);
        }

        if (_stops.Length == 0)
        {
            return new StopCheck(piece, null);
        }

        // The held text has no complete stop string in it, so any match here ends inside the new piece.
        string text = _held + piece;
        int bestStart = -1;
        int bestEnd = int.MaxValue;
        string? best = null;
        foreach (string stop in _stops)
        {
            // A stop string's first occurrence is also the one that ends first.
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            int end = at + stop.Length;
            if (at >= 0 && (end < bestEnd || (end == bestEnd && at < bestStart)))
            {
                (bestStart, bestEnd, best) = (at, end, stop);
            }
        }

        if (best is not null)
        {
            StopString = best;
            _held = string.Empty;
            return new StopCheck(text[..bestStart], best);
        }

        int hold = PartialMatchLength(text);
        _held = text[^hold..];
        return new StopCheck(text[..^hold], null);
    }

    /// <summary>At the end of generation (no stop matched): the held-back text, which can no longer become a stop string.</summary>
    public string Flush()
    {
        string rest = Stopped ? string.Empty : _held;
        _held = string.Empty;
        return rest;
    }

    /// <summary>
    /// The longest suffix of <paramref name="text"/> that is a proper prefix of some stop string: the earliest place a
    /// stop string could still start, so everything before it is safe.
    /// </summary>
    private int PartialMatchLength(string text)
    {
        for (int length = Math.Min(text.Length, _longest - 1); length > 0; length--)
        {
            var suffix = text.AsSpan(text.Length - length);
            foreach (string stop in _stops)
            {
                if (stop.Length > length && stop.AsSpan().StartsWith(suffix, StringComparison.Ordinal))
                {
                    return length;
                }
            }
        }

        return 0;
    }
}
