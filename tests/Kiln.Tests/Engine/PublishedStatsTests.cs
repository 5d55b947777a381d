using Kiln.Runtime.Engine;

namespace Kiln.Tests.Engine;

/// <summary>
/// The engine thread publishes its figures once a step and callers read them from other threads: every read must
/// be one step's figures, never a mix of two (a scaler that saw the pending tokens of one step beside the running
/// count of another would scale on numbers that never existed).
/// </summary>
public sealed class PublishedStatsTests
{
    [Fact]
    public void ReadsWhilePublishing_AreAlwaysOneWholePublication()
    {
        var published = new PublishedStats();
        published.Publish(Step(0));
        bool stop = false;

        // Its own thread, not the pool's: under a loaded test run a pool task may not start while the reads go on.
        var writer = new Thread(() =>
        {
            for (int step = 1; !Volatile.Read(ref stop); step++)
            {
                published.Publish(Step(step));
            }
        })
        { IsBackground = true };
        writer.Start();

        // Read until many publications went by beside the reads (a read count bounds it if the writer never runs).
        int distinct = 0, last = -1;
        for (long i = 0; i < 50_000_000 && distinct < 1000; i++)
        {
            var f = published.Read();
            int step = f.RunningSequences;
            Assert.True(f == Step(step), $"read {i} mixes publications: {f}");
            distinct += step != last ? 1 : 0;
            last = step;
        }

        Volatile.Write(ref stop, true);
        writer.Join();
        Assert.True(distinct >= 1000, $"the reads saw only {distinct} publications: the writer barely ran beside them");
    }

    /// <summary>Figures all derived from the step number, so a read that mixes two steps shows.</summary>
    private static PublishedStats.Figures Step(int s) => new(
        s, s, s + 1, 10L * s, 20L * s, 1000, s % 1000, 1000 - (s % 1000), s % 7, 3L * s, s, s * 0.5, s * 0.25, s / 3, 5L * s, 2L * s);
}
