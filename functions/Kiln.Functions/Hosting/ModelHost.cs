using Kiln.Kernels.Cuda;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Backends;
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
/// Owns the process's one engine, on the CPU or on the CUDA backend (<see cref="KilnSettings.Device"/>). Loading
/// starts in the background when the host starts, so the app answers at once (health, and 503 on ready and the API)
/// and the engine then stays warm for the life of the process. A load that fails, a missing GPU included, leaves the
/// app up and reports the reason on ready and in the log.
/// </summary>
public sealed partial class ModelHost(KilnSettings settings, ILogger<ModelHost> logger, TimeProvider time, ModelLoadFunc? load = null) : IHostedService, IDisposable
{
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile InferenceEngine? _engine;
    private LoadedModel? _weightsInUse; // the model whose weights the CPU engine reads; disposed after the engine
    private volatile Exception? _error;
    private int _started;
    private bool _disposed;

    public string ModelId { get; } = settings.ModelId;

    public KilnSettings Settings { get; } = settings;

    /// <summary>Where the model runs: <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device => Settings.DeviceName;

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
        LoadedModel? model = null;
        InferenceEngine? engine = null;
        try
        {
            LogLoading(logger, ModelId, Settings.ModelPath ?? DemoModel.SourceName, Device);
            if (Settings.Device == KilnDevice.Cuda && CudaBackend.UnavailableReason is { } reason)
            {
                // Before mapping gigabytes that could not run anyway.
                throw new CudaUnavailableException($"setting {KilnSettings.Section}:Device is cuda, but the CUDA backend cannot start: {reason}. Set it to cpu to run on the CPU.");
            }

            var started = System.Diagnostics.Stopwatch.StartNew();
            model = (load ?? (path => ModelLoader.Load(path)))(Settings.ModelPath);
            Template = DetectTemplate(Settings.ModelPath);
            engine = CreateEngine(model, Settings);
            if (Settings.Device == KilnDevice.Cuda)
            {
                model.Dispose(); // the GPU holds its own copy: the host's gigabytes are released now
            }
            else
            {
                _weightsInUse = model;
            }

            _engine = engine;
            if (Volatile.Read(ref _disposed))
            {
                Dispose(); // the host stopped while the model loaded
                return;
            }

            LogLoaded(logger, ModelId, started.Elapsed.TotalSeconds, Template.Family, Device);
        }
#pragma warning disable CA1031 // any failure is reported through /ready and 503s, not by crashing the host
        catch (Exception e)
#pragma warning restore CA1031
        {
            if (engine is null)
            {
                model?.Dispose(); // no engine holds it: unmap it rather than keep a failed load's gigabytes
            }

            _error = e;
            LogFailed(logger, e, ModelId, Device);
        }
        finally
        {
            _loaded.TrySetResult();
        }
    }

    /// <summary>
    /// The CPU engine, or the engine on a CUDA runner sized to the engine's limits (the runner must take a step's
    /// tokens and one row of logits per running sequence); the engine owns the runner once it exists.
    /// </summary>
    private InferenceEngine CreateEngine(LoadedModel model, KilnSettings settings)
    {
        var options = settings.Engine;
        if (settings.Device != KilnDevice.Cuda)
        {
            return new InferenceEngine(model, options, time);
        }

        options.Validate();
        IModelRunner runner = CudaBackend.CreateRunner(
            model, options.TensorParallelSize, maxBatchTokens: options.MaxBatchedTokens, maxLogitRows: options.MaxSequences, maxContext: options.MaxModelLength);
        try
        {
            string warmUp = CudaBackend.Describe(runner) ?? runner.Device; // once a load: cheap
            LogWarmUp(logger, ModelId, warmUp);

            return new InferenceEngine(model.Description, runner, options, time);
        }
        catch
        {
            runner.Dispose();
            throw;
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
            engine.Dispose();
            Interlocked.Exchange(ref _weightsInUse, null)?.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Loading model {ModelId} from {Path} on {Device}")]
    private static partial void LogLoading(ILogger logger, string modelId, string path, string device);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {ModelId} loaded in {Seconds:F1} s on {Device}; chat template {Family}")]
    private static partial void LogLoaded(ILogger logger, string modelId, double seconds, ChatTemplateFamily family, string device);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {ModelId} warmed up on {Backend}")]
    private static partial void LogWarmUp(ILogger logger, string modelId, string backend);

    [LoggerMessage(Level = LogLevel.Error, Message = "Model {ModelId} failed to load on {Device}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string modelId, string device);
}
