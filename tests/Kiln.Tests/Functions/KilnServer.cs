using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using Kiln.Functions;
using Kiln.Functions.Hosting;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Reference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;

namespace Kiln.Tests.Functions;

/// <summary>
/// The app in standalone mode, in-process on a free loopback port: what <c>dotnet run --project functions/...</c>
/// serves, with the settings given as command-line configuration (<c>Kiln:MaxSequences=1</c>, ...).
/// </summary>
public sealed class KilnServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private KilnServer(WebApplication app, Uri root)
    {
        _app = app;
        Root = root;
        Http = new HttpClient { BaseAddress = new Uri(root, "api/"), Timeout = TimeSpan.FromMinutes(2) };
    }

    public Uri Root { get; }

    /// <summary>A client whose base address is the route prefix: <c>http://127.0.0.1:PORT/api/</c>.</summary>
    public HttpClient Http { get; }

    public ModelHost Model => _app.Services.GetRequiredService<ModelHost>();

    public IServiceProvider Services => _app.Services;

    public static async Task<KilnServer> StartAsync(string? modelPath, IEnumerable<string>? settings = null, Action<WebApplicationBuilder>? configure = null)
    {
        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            "--Kiln:KvCacheBytes=33554432", // 32 MiB: plenty for the test models, nothing like the default share of RAM
            "--Kiln:Threads=2",
        };
        if (modelPath is not null)
        {
            args.Add($"--Kiln:Model={modelPath}");
        }

        args.AddRange((settings ?? []).Select(s => "--" + s));
        var app = KilnApp.CreateStandalone([.. args], configure);
        try
        {
            await app.StartAsync(TestContext.Current.CancellationToken);
        }
        catch
        {
            await app.DisposeAsync(); // a refused start (a bad setting) leaves nothing bound behind
            throw;
        }

        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new KilnServer(app, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>The official SDK pointed at the app, with <paramref name="key"/> as its API key; no retries, so a 429 shows as it is.</summary>
    public OpenAIClient OpenAi(string key = "kiln-test-key") => new(
        new ApiKeyCredential(key),
        new OpenAIClientOptions { Endpoint = new Uri(Root, "api/v1"), RetryPolicy = new ClientRetryPolicy(maxRetries: 0), NetworkTimeout = TimeSpan.FromMinutes(2) });

    public async Task WaitUntilLoadedAsync() => await Model.Loaded.WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);

    /// <summary>One sample's value from /metrics (the first line whose name and labels match), or null.</summary>
    public async Task<double?> MetricAsync(string series)
    {
        string text = await Http.GetStringAsync(new Uri("metrics", UriKind.Relative), TestContext.Current.CancellationToken);
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}

/// <summary>A random Llama GGUF (synthetic SentencePiece vocabulary) served by one app for a test class.</summary>
public sealed class KilnServerFixture : IAsyncLifetime
{
    /// <summary>Big enough that a long generation takes seconds (the disconnect test), small enough to load at once.</summary>
    public static RandomLlamaOptions ModelOptions { get; } = new()
    {
        VocabSize = 512,
        Hidden = 128,
        Intermediate = 384,
        Layers = 4,
        Heads = 4,
        KvHeads = 2,
        ContextLength = 4096,
        Seed = 11,
    };

    private readonly TempGguf _file = new(ModelOptions);

    public KilnServer Server { get; private set; } = null!;

    /// <summary>The id clients name: the file name.</summary>
    public static string ModelId => "model.gguf";

    public async ValueTask InitializeAsync()
    {
        Server = await KilnServer.StartAsync(_file.Path);
        await Server.WaitUntilLoadedAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _file.Dispose();
    }
}
