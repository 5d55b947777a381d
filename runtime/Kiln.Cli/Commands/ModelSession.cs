using Kiln.Runtime.Loading;
using Spectre.Console;

namespace Kiln.Cli.Commands;

/// <summary>Loads the model for a command, with a progress bar on stderr when it is a terminal.</summary>
internal static class ModelSession
{
    public static LoadedModel Load(string? path, bool showProgress)
    {
        if (!showProgress || Console.IsErrorRedirected)
        {
            return ModelLoader.Load(path);
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        LoadedModel? model = null;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask($"loading {Markup.Escape(path ?? DemoModel.SourceName)}", maxValue: 1);
                model = ModelLoader.Load(path, new Progress(task));
                task.Value = task.MaxValue;
            });
        var m = model!;
        console.MarkupLine($"[grey]{Markup.Escape(m.Source)}: {m.Config.Architecture}, {m.Weights.ParameterCount / 1e6:F1}M parameters, {m.Config.LayerCount} layers, vocabulary {m.Config.VocabSize}[/]");
        return m;
    }

    /// <summary>Reports synchronously: Progress&lt;T&gt; would post to the thread pool and lag behind the load.</summary>
    private sealed class Progress(ProgressTask task) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value)
        {
            task.MaxValue = Math.Max(1, value.Total);
            task.Value = value.Done;
        }
    }
}
