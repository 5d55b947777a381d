using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Hosting;

/// <summary>
/// Ties <see cref="ShutdownDrain"/> to the host's stop: the drain begins on ApplicationStopping (SIGTERM), and the
/// host's stopping phase, which runs before any hosted service's StopAsync (Kestrel, the queue poller, the engine's
/// host), waits until the calls and jobs in flight have finished or <see cref="KilnSettings.DrainTimeout"/> has passed.
/// Kestrel keeps listening meanwhile, so new calls get a 503 rather than a refused connection.
/// </summary>
public sealed partial class DrainService(ShutdownDrain drain, KilnSettings settings, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<DrainService> logger)
    : IHostedLifecycleService
{
    private CancellationTokenRegistration _stopping;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(drain.Begin);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        drain.Begin();
        long start = time.GetTimestamp();
        int inFlight = drain.InFlight;
        LogDraining(logger, inFlight, settings.DrainTimeout.TotalSeconds);
        try
        {
            await drain.Idle.WaitAsync(settings.DrainTimeout, time, cancellationToken).ConfigureAwait(false);
            double seconds = time.GetElapsedTime(start).TotalSeconds;
            LogDrained(logger, seconds);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // What is still running is cut by the stop; queue jobs among it come back when their lease ends.
            double seconds = time.GetElapsedTime(start).TotalSeconds;
            LogDrainTimedOut(logger, drain.InFlight, seconds);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        _stopping.Dispose();
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Draining: {InFlight} calls and job loops in flight, waiting up to {Seconds} s for them")]
    private static partial void LogDraining(ILogger logger, int inFlight, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Drained in {Seconds:F1} s")]
    private static partial void LogDrained(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Drain timed out after {Seconds:F1} s with {InFlight} still in flight: stopping anyway")]
    private static partial void LogDrainTimedOut(ILogger logger, int inFlight, double seconds);
}
