using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Models;

namespace Kiln.Runtime.Engine;

/// <summary>
/// The warm-resident engine: one per process, created at start and kept for its lifetime. Any number of callers
/// submit requests concurrently; one engine thread runs the loop (schedule, run the model, sample, stream), so many
/// requests share every step. A request's events arrive through an <see cref="IAsyncEnumerable{T}"/>; a caller that
/// goes away cancels its token and its blocks return to the pool at the next step.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    private readonly EngineCore _core;
    private readonly Thread _thread;
    private readonly ConcurrentQueue<RequestState> _inbox = new();
    private readonly ConcurrentQueue<RequestState> _cancellations = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly int _maxWaiting;
    private long _nextId;
    private int _waiting; // the overload bound's count: the inbox plus the scheduler's queue as the engine thread last folded it in
    private int _waitingFolded; // engine thread only: the scheduler's waiting count already in _waiting
    private long _inboxPromptTokens;
    private long _inboxDecodeTokens;
    private volatile bool _stopping;

    public InferenceEngine(LoadedModel model, EngineOptions? options = null)
        : this(model, null, options ?? new EngineOptions())
    {
    }

    /// <summary>
    /// Runs on a given backend (the CUDA runner, a test's runner); null builds the CPU backend over the model's weights
    /// from the options. The model must outlive the engine: the CPU backend reads its weights in place.
    /// </summary>
    public InferenceEngine(LoadedModel model, IModelRunner? runner, EngineOptions options)
        : this(model.Description, runner, maxContext => ModelRunners.CreateCpu(model, options.TensorParallelSize, options.MaxBatchedTokens, maxContext, options.Threads), options)
    {
    }

    /// <summary>Runs on a backend that holds the weights itself (a GPU): the engine needs only the model's description.</summary>
    public InferenceEngine(ModelDescription model, IModelRunner runner, EngineOptions options)
        : this(model, runner, null, options)
    {
    }

    private InferenceEngine(ModelDescription model, IModelRunner? runner, Func<int, IModelRunner>? createCpuRunner, EngineOptions options)
    {
        options.Validate();
        Model = model;
        Options = options;
        _maxWaiting = options.MaxWaitingRequests;
        _core = new EngineCore(model, runner, createCpuRunner, options);
        _thread = new Thread(Loop) { IsBackground = true, Name = "kiln-engine" };
        _thread.Start();
    }

    public ModelDescription Model { get; }

    public EngineOptions Options { get; }

    public ModelConfig Config => Model.Config;

    /// <summary>Longest prompt plus output one request may have.</summary>
    public int MaxModelLength => _core.MaxModelLength;

    public int TensorParallelSize => _core.Runner.TensorParallelSize;

    /// <summary>
    /// Queues a request and returns its event stream. Fails fast with <see cref="EngineOverloadedException"/> when the
    /// waiting queue is full, and with <see cref="ArgumentException"/> when the request cannot be served at all.
    /// </summary>
    public IAsyncEnumerable<TokenEvent> Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        request.Sampling.Validate();
        int[] prompt = Tokenize(request);
        int maxTokens = request.Sampling.MaxTokens ?? (MaxModelLength - prompt.Length);
        _core.ValidateFits(prompt, maxTokens);

        // Waiting = submitted but not yet drained by the engine thread, plus waiting in the scheduler's queue: one
        // counter, so a request moving from the inbox to the queue is never counted twice (or not at all).
        if (Interlocked.Increment(ref _waiting) > _maxWaiting)
        {
            Interlocked.Decrement(ref _waiting);
            throw new EngineOverloadedException($"the engine is overloaded: {_maxWaiting} requests are already waiting; retry later");
        }

        var state = new RequestState(request.RequestId ?? $"req-{Interlocked.Increment(ref _nextId)}", request, prompt.Length, maxTokens);
        _core.CreateSequences(state, prompt);
        Interlocked.Add(ref _inboxPromptTokens, prompt.Length);
        Interlocked.Add(ref _inboxDecodeTokens, (long)maxTokens * request.Sampling.N);
        if (cancellationToken.CanBeCanceled)
        {
            state.Registration = cancellationToken.Register(() =>
            {
                state.Cancel();
                _cancellations.Enqueue(state);
                _wake.Release();
            });
        }

        _inbox.Enqueue(state);
        _wake.Release();
        return ReadAsync(state, cancellationToken);
    }

    /// <summary>Prompt token count the engine would use for a request (for validation and usage before running it).</summary>
    public int CountPromptTokens(GenerationRequest request) => Tokenize(request).Length;

    public EngineStats GetStats() => _core.Stats(
        waitingRequests: Volatile.Read(ref _waiting),
        inboxPromptTokens: Interlocked.Read(ref _inboxPromptTokens),
        inboxDecodeTokens: Interlocked.Read(ref _inboxDecodeTokens));

    private int[] Tokenize(GenerationRequest request)
    {
        int[] ids = request.PromptTokenIds is { } given
            ? [.. given]
            : [.. Model.RequireTokenizer().Encode(request.Prompt ?? throw new ArgumentException("the request has neither a prompt nor prompt token ids"), request.AddSpecialTokens)];
        if (ids.Length == 0)
        {
            ids = Model.BosTokenId is int bos ? [bos] : throw new ArgumentException("the prompt is empty and the model has no BOS token to start from");
        }

        foreach (int id in ids)
        {
            if ((uint)id >= (uint)Config.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(request), $"prompt token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})");
            }
        }

        return ids;
    }

    private static async IAsyncEnumerable<TokenEvent> ReadAsync(RequestState state, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = state.Events.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                yield return item;
            }
        }
    }

    private void Loop()
    {
        while (!_stopping)
        {
            // Admitted requests are published as pending tokens before they leave the inbox's, so the stats never miss
            // them in between (they may count them twice for that instant: the safe side for a scaler). The waiting
            // count, the overload bound's, moves them in one step (FoldWaiting).
            int drained = 0;
            long drainedPrompt = 0, drainedDecode = 0;
            while (_inbox.TryDequeue(out var state))
            {
                _core.Admit(state);
                drained++;
                drainedPrompt += state.PromptLength;
                drainedDecode += (long)state.MaxTokens * state.Sampling.N;
            }

            if (drained > 0)
            {
                _core.PublishStats();
                FoldWaiting(drained);
                Interlocked.Add(ref _inboxPromptTokens, -drainedPrompt);
                Interlocked.Add(ref _inboxDecodeTokens, -drainedDecode);
            }

            while (_cancellations.TryDequeue(out var cancelled))
            {
                _core.Abort(cancelled, null);
            }

            if (!_core.HasWork)
            {
                _core.PublishStats();
                FoldWaiting(0); // what changed since the last step (aborted requests) is counted before the engine sleeps
                _wake.Wait();
                continue;
            }

            bool stepped = _core.Step();
            FoldWaiting(0);
            if (!stepped)
            {
                // Work is waiting but none fits the pool right now; wait for a change.
                _wake.Wait(TimeSpan.FromMilliseconds(50));
            }
        }
    }

    /// <summary>
    /// Brings the overload bound's count up to the scheduler's queue as last published. The <paramref name="drained"/>
    /// requests just admitted were counted when submitted: they only moved from the inbox to the queue.
    /// </summary>
    private void FoldWaiting(int drained)
    {
        int waiting = _core.PublishedWaiting;
        Interlocked.Add(ref _waiting, waiting - _waitingFolded - drained);
        _waitingFolded = waiting;
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        _wake.Release();
        _thread.Join();
        while (_inbox.TryDequeue(out var state))
        {
            _core.Abort(state, new ObjectDisposedException(nameof(InferenceEngine), "the engine was shut down"));
        }

        _core.Dispose();
        _wake.Dispose();
    }
}
