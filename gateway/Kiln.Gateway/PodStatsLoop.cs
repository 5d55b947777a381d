using Microsoft.Extensions.Options;

namespace Kiln.Gateway;

/// <summary>Reads every known pod's stats each <c>StatsIntervalMs</c>: the engines' own load and state.</summary>
public sealed class PodStatsLoop(PodDirectory directory, PodStatsReader stats, IOptions<GatewayOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromMilliseconds(options.Value.StatsIntervalMs);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
                await stats.RefreshAllAsync(directory.All, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
