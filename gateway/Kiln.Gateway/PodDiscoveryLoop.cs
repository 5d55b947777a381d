using Microsoft.Extensions.Options;

namespace Kiln.Gateway;

/// <summary>
/// Lists pods every <c>DiscoveryIntervalMs</c> and reads a new pod's stats at once, so a held call goes out as soon
/// as the first pod is ready rather than a stats interval later. A failing listing keeps the last known pods (an API
/// server hiccup must not empty the fleet) and is logged once per outage.
/// </summary>
public sealed partial class PodDiscoveryLoop(IPodDiscovery discovery, PodDirectory directory, PodStatsReader stats, IOptions<GatewayOptions> options, TimeProvider time, ILogger<PodDiscoveryLoop> log)
    : BackgroundService
{
    private bool _failing;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromMilliseconds(options.Value.DiscoveryIntervalMs);
        LogDiscovering(log, discovery.Source, interval);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var candidates = await discovery.ListAsync(stoppingToken).ConfigureAwait(false);
                var added = directory.Update([.. candidates]);
                await stats.RefreshAllAsync(added, stoppingToken).ConfigureAwait(false);
                if (_failing)
                {
                    _failing = false;
                    LogRecovered(log, candidates.Count);
                }

                await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                if (!_failing)
                {
                    _failing = true;
                    LogFailed(log, e.Message);
                }

                try
                {
                    await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Discovering {Source} every {Interval}")]
    private static partial void LogDiscovering(ILogger logger, string source, TimeSpan interval);

    [LoggerMessage(Level = LogLevel.Information, Message = "Pod discovery works again: {Count} pods")]
    private static partial void LogRecovered(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pod discovery failed ({Error}); keeping the last known pods")]
    private static partial void LogFailed(ILogger logger, string error);
}
