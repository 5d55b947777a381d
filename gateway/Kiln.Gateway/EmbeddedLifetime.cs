namespace Kiln.Gateway;

/// <summary>
/// The lifetime of a gateway hosted inside another process (tests, benchmarks): unlike the console lifetime it takes
/// no SIGTERM/Ctrl+C handlers, which would otherwise keep the host process from exiting on a signal.
/// </summary>
public sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
