using Kiln.LocalCluster;

namespace Kiln.Tests.Infrastructure;

/// <summary>
/// An xunit fixture around <see cref="AzuriteProcess"/> (use it as a class or collection fixture). Where node or npm
/// is missing it does not fail: tests call <see cref="Require"/> and are skipped with the reason. Name such tests
/// <c>..._NeedsAzurite</c>.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private AzuriteProcess? _azurite;
    private string? _unavailable;

    /// <summary>The account's connection string (queue, blob and table endpoints); skips the test where Azurite cannot run.</summary>
    public string ConnectionString => Require().ConnectionString;

    public AzuriteProcess Require()
    {
        if (_azurite is null)
        {
            Prerequisite.Missing($"Azurite unavailable: {_unavailable}");
        }

        return _azurite;
    }

    public async ValueTask InitializeAsync()
    {
        try
        {
            _azurite = await AzuriteProcess.StartAsync(TestContext.Current.CancellationToken);
        }
        catch (AzuriteUnavailableException e)
        {
            _unavailable = e.Message;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_azurite is not null)
        {
            await _azurite.DisposeAsync();
        }
    }
}
