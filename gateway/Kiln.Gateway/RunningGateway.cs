namespace Kiln.Gateway;

/// <summary>A gateway started by <see cref="GatewayHost.StartAsync"/>; disposing stops it.</summary>
public sealed class RunningGateway(WebApplication app, Uri address) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri Address { get; } = address;

    public IServiceProvider Services => App.Services;

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}
