using System.Collections.Concurrent;
using Microsoft.Extensions.Caching.Memory;

namespace Kiln.Scaler.Sources;

/// <summary>A source failed and no value recent enough (within the staleness bound) exists: the RPC answers Unavailable.</summary>
public sealed class SourceUnavailableException(string source, Exception inner)
    : Exception($"{source}: {inner.Message} (and no value within the staleness bound)", inner)
{
    public string SourceName { get; } = source;
}

/// <summary>
/// Every outbound read goes through here: a value younger than the refresh interval is served as is; otherwise one
/// fetch (shared by concurrent callers) runs under a timeout. A failed or slow fetch serves the last good value while
/// it is within the staleness bound (the cache entry's expiry), so a transient error never reaches KEDA; past it the
/// caller gets <see cref="SourceUnavailableException"/> and KEDA's fallback applies.
/// </summary>
public sealed partial class ResilientCache(IMemoryCache cache, TimeProvider time, OutageLog outages, ILogger<ResilientCache> log)
{
    private sealed record Entry(object Value, DateTimeOffset FetchedAt);

    private readonly ConcurrentDictionary<string, Lazy<Task<object>>> _inflight = new(StringComparer.Ordinal);

    public async Task<T> GetAsync<T>(
        string key, Func<CancellationToken, Task<T>> fetch, TimeSpan freshness, TimeSpan staleness, TimeSpan timeout,
        CancellationToken cancellationToken, TimeSpan? keepFor = null)
        where T : notnull
    {
        ArgumentNullException.ThrowIfNull(fetch);
        if (cache.TryGetValue(key, out Entry? entry) && time.GetUtcNow() - entry!.FetchedAt <= freshness)
        {
            return (T)entry.Value;
        }

        try
        {
            return (T)await Shared(key, fetch, timeout, keepFor ?? staleness).WaitAsync(cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            if (cache.TryGetValue(key, out entry) && time.GetUtcNow() - entry!.FetchedAt <= staleness)
            {
                var age = (time.GetUtcNow() - entry.FetchedAt).TotalSeconds;
                LogServingStale(log, key, age, e.Message);

                return (T)entry.Value;
            }

            throw new SourceUnavailableException(key, e is OperationCanceledException ? new TimeoutException($"no answer within {timeout.TotalMilliseconds} ms", e) : e);
        }
    }

    // One fetch per key at a time; it runs on its own timeout, not the caller's token, so that one caller giving up
    // does not fail the others sharing it.
    private Task<object> Shared<T>(string key, Func<CancellationToken, Task<T>> fetch, TimeSpan timeout, TimeSpan keepFor)
        where T : notnull
    {
        var mine = new Lazy<Task<object>>(() => Run(key, fetch, timeout, keepFor));
        var lazy = _inflight.GetOrAdd(key, mine);
        return lazy.Value;
    }

    private async Task<object> Run<T>(string key, Func<CancellationToken, Task<T>> fetch, TimeSpan timeout, TimeSpan keepFor)
        where T : notnull
    {
        try
        {
            using var cts = new CancellationTokenSource(timeout, time);
            T value;
            try
            {
                value = await fetch(cts.Token).WaitAsync(cts.Token);
            }
            catch (Exception e)
            {
                outages.Failed(key, e is OperationCanceledException ? $"no answer within {timeout.TotalMilliseconds} ms" : e.Message);
                throw;
            }

            outages.Succeeded(key);
            cache.Set(key, new Entry(value, time.GetUtcNow()), new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = keepFor > TimeSpan.Zero ? keepFor : TimeSpan.FromTicks(1) });
            return value;
        }
        finally
        {
            _inflight.TryRemove(key, out _);
        }
    }

    // The outage itself is logged once by OutageLog; each stale answer only at Debug.
    [LoggerMessage(Level = LogLevel.Debug, Message = "{Source} failed ({Error}); serving the value from {AgeSeconds:F1} s ago")]
    private static partial void LogServingStale(ILogger logger, string source, double ageSeconds, string error);
}
