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
    public async Task ReadsWhilePublishing_AreAlwaysOneWholePublication()
    {
        var published = new PublishedStats();
        published.Publish(Step(0));
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            for (int step = 1; !stop.IsCancellationRequested; step++)
            {
                published.Publish(Step(step));
            }
        }, TestContext.Current.CancellationToken);

        int distinct = 0, last = -1;
        for (int i = 0; i < 200_000; i++)
        {
            var f = published.Read();
            int step = f.RunningSequences;
            Assert.True(f == Step(step), $"read {i} mixes publications: {f}");
            distinct += step != last ? 1 : 0;
            last = step;
        }

        stop.Cancel();
        await writer;
        Assert.True(distinct > 100, $"the reads saw only {distinct} publications: the writer barely ran beside them");
    }

    /// <summary>Figures all derived from the step number, so a read that mixes two steps shows.</summary>
    private static PublishedStats.Figures Step(int s) => new(
        s, s, s + 1, 10L * s, 20L * s, 1000, s % 1000, 1000 - (s % 1000), s % 7, 3L * s, s, s * 0.5, s * 0.25, s / 3, 5L * s, 2L * s);
}
