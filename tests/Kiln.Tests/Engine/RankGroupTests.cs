using System.Collections.Concurrent;
using Kiln.Runtime.Backends;

namespace Kiln.Tests.Engine;

/// <summary>RankGroup running work other than a step (a GPU group's warm-up trials): every rank at once, failures as in a step.</summary>
public sealed class RankGroupTests
{
    [Fact]
    public void RunWork_RunsEveryRankOnce_Rank0OnTheCaller_OthersOnTheirThreads()
    {
        int aborts = 0;
        using var group = new RankGroup(3, "test-rank", (_, _) => throw new InvalidOperationException("no step here"), () => Interlocked.Increment(ref aborts));
        var threads = new ConcurrentDictionary<int, int>();
        group.Run(rank => threads[rank] = Environment.CurrentManagedThreadId);

        Assert.Equal([0, 1, 2], threads.Keys.Order());
        Assert.Equal(Environment.CurrentManagedThreadId, threads[0]);
        Assert.Equal(3, threads.Values.Distinct().Count());
        Assert.Equal(0, aborts);
    }

    [Fact]
    public void RunWork_AFailingRank_AbortsTheGroupAndIsReported_ThenStepsRunAgain()
    {
        int aborts = 0;
        int steps = 0;
        using var group = new RankGroup(2, "test-rank", (_, _) => Interlocked.Increment(ref steps), () => Interlocked.Increment(ref aborts));
        var error = Assert.Throws<InvalidOperationException>(() => group.Run(rank =>
        {
            if (rank == 1)
            {
                throw new TimeoutException("rank 1 broke");
            }
        }));

        Assert.Contains("tensor-parallel rank 1 failed: rank 1 broke", error.Message, StringComparison.Ordinal);
        Assert.IsType<TimeoutException>(error.InnerException);
        Assert.Equal(1, aborts);

        // The work is gone once it returned: the next step runs the step delegate again.
        group.Run(default, [], (_, _) => { });
        Assert.Equal(1, steps);
    }
}
