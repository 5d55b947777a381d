using Kiln.Tests.Reference;

namespace Kiln.Tests.Functions;

/// <summary>The app with two API keys (one being rotated in) and a metrics key, as the OpenAI SDK and the scaler meet it.</summary>
public sealed class KeyedServerFixture : IAsyncLifetime
{
    public const string FirstKey = "kiln-key-one-0123456789";
    public const string SecondKey = "kiln-key-two-9876543210";
    public const string MetricsKey = "kiln-metrics-key-5555";

    private readonly TempGguf _file = new(KilnServerFixture.ModelOptions);

    public KilnServer Server { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Server = await KilnServer.StartAsync(_file.Path, [$"Kiln:ApiKeys={FirstKey}, {SecondKey}", $"Kiln:MetricsKeys:0={MetricsKey}"]);
        await Server.WaitUntilLoadedAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _file.Dispose();
    }
}
