using Kiln.Runtime.Chat;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Hosting;

/// <summary>How the model is loaded: <see cref="ModelLoader.Load"/> unless a caller (a test) registers another.</summary>
public delegate LoadedModel ModelLoadFunc(string? path);

public enum ModelState
{
    Loading,
    Ready,
    Failed,
}

/// <summary>
/// Owns the process's one engine. Loading starts in the background when the host starts, so the app answers at once
/// (health, and 503 on ready and the API) and the engine then stays warm for the life of the process.
/// </summary>
public sealed partial class ModelHost(KilnSettings settings, ILogger<ModelHost> logger, ModelLoadFunc? load = null) : IHostedService, IDisposable
{
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile InferenceEngine? _engine;
    private volatile Exception? _error;
    private int _started;
    private bool _disposed;

    public string ModelId { get; } = settings.ModelId;

    public KilnSettings Settings { get; } = settings;

    /// <summary>Seconds since the Unix epoch when the app started: the model's "created".</summary>
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public ModelState State => _engine is not null ? ModelState.Ready : _error is not null ? ModelState.Failed : ModelState.Loading;

    /// <summary>The engine once loaded, else null.</summary>
    public InferenceEngine? Engine => _engine;

    public ChatTemplate Template { get; private set; } = ChatTemplate.ChatMl;

    public Exception? LoadError => _error;

    /// <summary>Completes when loading ends, either way (tests and the warmup wait on it).</summary>
    public Task Loaded => _loaded.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            // Off the start-up path: the host must keep answering while gigabytes are mapped.
            _ = Task.Run(Load, CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Load()
    {
        try
        {
            LogLoading(logger, ModelId, Settings.ModelPath ?? DemoModel.SourceName);
            var started = System.Diagnostics.Stopwatch.StartNew();
            var model = (load ?? (path => ModelLoader.Load(path)))(Settings.ModelPath);
            Template = DetectTemplate(Settings.ModelPath);
            _engine = new InferenceEngine(model, Settings.Engine);
            if (Volatile.Read(ref _disposed))
            {
                Dispose(); // the host stopped while the model loaded
                return;
            }

            LogLoaded(logger, ModelId, started.Elapsed.TotalSeconds, Template.Family);
        }
#pragma warning disable CA1031 // any failure is reported through /ready and 503s, not by crashing the host
        catch (Exception e)
#pragma warning restore CA1031
        {
            _error = e;
            LogFailed(logger, e, ModelId);
        }
        finally
        {
            _loaded.TrySetResult();
        }
    }

    /// <summary>tokenizer_config.json of a Hugging Face directory (or beside a file); a GGUF's own chat template.</summary>
    private static ChatTemplate DetectTemplate(string? path)
    {
        if (string.IsNullOrWhiteSpace(path) || path == DemoModel.SourceName)
        {
            return ChatTemplate.ChatMl;
        }

        if (Directory.Exists(path))
        {
            return ChatTemplate.Detect(path);
        }

        string beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
        if (File.Exists(beside) || !path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            return ChatTemplate.Detect(beside);
        }

        using var gguf = GgufFile.Open(path);
        return gguf.TryGet("tokenizer.chat_template", out string template) ? ChatTemplate.FromTemplate(template) : ChatTemplate.ChatMl;
    }

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        var engine = Interlocked.Exchange(ref _engine, null);
        if (engine is not null)
        {
            var model = engine.Model;
            engine.Dispose();
            model.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Loading model {ModelId} from {Path}")]
    private static partial void LogLoading(ILogger logger, string modelId, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {ModelId} loaded in {Seconds:F1} s; chat template {Family}")]
    private static partial void LogLoaded(ILogger logger, string modelId, double seconds, ChatTemplateFamily family);

    [LoggerMessage(Level = LogLevel.Error, Message = "Model {ModelId} failed to load")]
    private static partial void LogFailed(ILogger logger, Exception exception, string modelId);
}
