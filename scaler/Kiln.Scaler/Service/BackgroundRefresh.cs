using Kiln.Scaler.Scaling;
using Kiln.Scaler.Sources;
using Microsoft.Extensions.Options;

namespace Kiln.Scaler.Service;

/// <summary>
/// Renews the readings of every object KEDA polled recently, so that its polls are answered from memory (one scaler,
/// many ScaledObjects: a poll must not wait on storage and the Kubernetes API). A few objects at a time; failures are
/// left to the polls, which then serve the last good value or Unavailable.
/// </summary>
public sealed class BackgroundRefresh(BacklogService backlog, IOptions<ScalerOptions> options, TimeProvider time) : BackgroundService
{
    private const int Parallelism = 8;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromMilliseconds(options.Value.BackgroundRefreshMs);
        if (period <= TimeSpan.Zero)
        {
            return;
        }

        // Readings younger than half a period are kept: a poll or a stream may just have renewed them.
        var renewOlderThan = period / 2;
        using var timer = new PeriodicTimer(period, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await Parallel.ForEachAsync(
                backlog.RecentlyPolled(), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = stoppingToken },
                async (md, ct) =>
                {
                    try
                    {
                        await backlog.EvaluateAsync(md, renewOlderThan, ct);
                    }
                    catch (Exception e) when (e is SourceUnavailableException or MetadataException)
                    {
                        // reported by the next poll
                    }
                });
        }
    }
}
