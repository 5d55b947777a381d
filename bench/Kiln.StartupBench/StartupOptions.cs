using System.CommandLine;
using Kiln.Bench.Common;

namespace Kiln.StartupBench;

/// <summary>The bench's command line: what to run, how often, and what to hand the app.</summary>
internal sealed record StartupOptions
{
    public int Runs { get; init; } = 5;

    /// <summary>Which models: <c>demo</c> (no Kiln:Model) and <c>1b</c> (the generated F16 GGUF).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["demo", "1b"];

    public int MaxTokens { get; init; } = 8;

    /// <summary>Skip the publish and run what is already in the publish folder.</summary>
    public bool NoPublish { get; init; }

    /// <summary>An app published elsewhere (say, from another commit) to run instead; nothing is published.</summary>
    public string? AppDirectory { get; init; }

    /// <summary>Extra <c>dotnet publish</c> arguments, e.g. <c>-p:PublishReadyToRun=false</c>.</summary>
    public IReadOnlyList<string> PublishArguments { get; init; } = [];

    /// <summary>Extra app settings, <c>Key=Value</c> (passed as <c>--Key=Value</c>), e.g. <c>Kiln:KvCacheBytes=268435456</c>.</summary>
    public IReadOnlyList<string> AppSettings { get; init; } = [];

    /// <summary>Environment variables for the app, <c>NAME=VALUE</c>, e.g. <c>DOTNET_TieredPGO=0</c>.</summary>
    public IReadOnlyList<string> Environment { get; init; } = [];

    public static RootCommand CreateCommand(Func<StartupOptions, Task<int>> run)
    {
        var defaults = new StartupOptions();
        var runs = BenchCommandLine.Int("--runs", "Starts of each model; the table shows median, min and max.", defaults.Runs, minimum: 1);
        var models = new Option<string>("--models") { Description = "Models, comma-separated: demo, 1b.", DefaultValueFactory = _ => string.Join(',', defaults.Models) };
        var maxTokens = BenchCommandLine.Int("--max-tokens", "max_tokens of the first chat completion.", defaults.MaxTokens, minimum: 1);
        var noPublish = new Option<bool>("--no-publish") { Description = "Run the app already published in bench/results/startup/app." };
        var appDirectory = new Option<string?>("--app") { Description = "Run the app published in this folder (another commit's, say) instead of publishing.", HelpName = "DIR" };
        var publishArgument = new Option<string[]>("--publish-arg") { Description = "An extra dotnet publish argument (repeatable), e.g. -p:PublishReadyToRun=false.", AllowMultipleArgumentsPerToken = false };
        var setting = new Option<string[]>("--setting") { Description = "An app setting Key=Value (repeatable), e.g. Kiln:KvCacheBytes=268435456." };
        var env = new Option<string[]>("--env") { Description = "An environment variable NAME=VALUE for the app (repeatable), e.g. DOTNET_TieredPGO=0." };
        var command = new RootCommand(
            "Publishes the function app (Release) and starts it as a process, several times for each model, measuring from the " +
            "process start the time to /api/ready 200, to the first streamed token of a chat completion sent right after, and " +
            "the resident memory (VmRSS) at ready and after that call. Writes bench/results/startup.md.")
        {
            runs, models, maxTokens, noPublish, appDirectory, publishArgument, setting, env,
        };
        command.SetAction(result => run(new StartupOptions
        {
            Runs = result.GetValue(runs),
            Models = result.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            MaxTokens = result.GetValue(maxTokens),
            NoPublish = result.GetValue(noPublish),
            AppDirectory = result.GetValue(appDirectory),
            PublishArguments = result.GetValue(publishArgument) ?? [],
            AppSettings = result.GetValue(setting) ?? [],
            Environment = result.GetValue(env) ?? [],
        }));
        return command;
    }
}
