using System.Collections.Concurrent;

namespace Kiln.Scaler.Sources;

/// <summary>
/// Logs a source's outage once: one warning when its reads start failing, one line when they succeed again, however
/// many ScaledObjects, polls and refreshes read it in between (those go to Debug). During an outage of the Kubernetes
/// API or of storage the log says what is wrong instead of repeating it per object per second.
/// </summary>
public sealed partial class OutageLog(TimeProvider time, ILogger<OutageLog> log)
{
    private sealed class Outage(DateTimeOffset since)
    {
        public DateTimeOffset Since { get; } = since;

        public int Failures;
    }

    private readonly ConcurrentDictionary<string, Outage> _outages = new(StringComparer.Ordinal);

    public void Failed(string source, string error)
    {
        var mine = new Outage(time.GetUtcNow());
        var outage = _outages.GetOrAdd(source, mine);
        if (Interlocked.Increment(ref outage.Failures) == 1 && ReferenceEquals(outage, mine))
        {
            LogFailing(log, source, error);
        }
        else
        {
            LogStillFailing(log, source, error);
        }
    }

    public void Succeeded(string source)
    {
        if (_outages.TryRemove(source, out var outage))
        {
            var seconds = (time.GetUtcNow() - outage.Since).TotalSeconds;
            var failures = Volatile.Read(ref outage.Failures);
            LogRecovered(log, source, seconds, failures);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Source} is failing: {Error} (serving the last good value within its staleness bound; logged once until it recovers)")]
    private static partial void LogFailing(ILogger logger, string source, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Source} still failing: {Error}")]
    private static partial void LogStillFailing(ILogger logger, string source, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Source} recovered after {Seconds:F1} s and {Failures} failed reads")]
    private static partial void LogRecovered(ILogger logger, string source, double seconds, int failures);
}
