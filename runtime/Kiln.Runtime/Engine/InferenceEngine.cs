using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Kiln.Runtime.Backends;
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
    private readonly Admission _admission;
    private readonly Action _resume;
    private readonly Action<RequestState> _release;

    // Orders a request's hand-off to the inbox against Dispose: a request is either in the inbox before Dispose drains
    // it (and is aborted there) or sees the engine stopped and is refused; never queued after the drain, unanswered.
    private readonly Lock _handoff = new();
    private long _nextId;
    private int _inboxRequests;
    private long _inboxPromptTokens;
    private long _inboxDecodeTokens;
    private volatile bool _stopping;

    public InferenceEngine(LoadedModel model, EngineOptions? options = null, TimeProvider? timeProvider = null)
        : this(model, null, options ?? new EngineOptions(), timeProvider)
    {
    }

    /// <summary>
    /// Runs on a given backend (the CUDA runner, a test's runner); null builds the CPU backend over the model's weights
    /// from the options. The model must outlive the engine: the CPU backend reads its weights in place.
    /// </summary>
    public InferenceEngine(LoadedModel model, IModelRunner? runner, EngineOptions options, TimeProvider? timeProvider = null)
        : this(model.Description, runner, maxContext => ModelRunners.CreateCpu(model, options.TensorParallelSize, options.MaxBatchedTokens, maxContext, options.Threads), options, timeProvider)
    {
    }

    /// <summary>Runs on a backend that holds the weights itself (a GPU): the engine needs only the model's description.</summary>
    public InferenceEngine(ModelDescription model, IModelRunner runner, EngineOptions options, TimeProvider? timeProvider = null)
        : this(model, runner, null, options, timeProvider)
    {
    }

    private InferenceEngine(ModelDescription model, IModelRunner? runner, Func<int, IModelRunner>? createCpuRunner, EngineOptions options, TimeProvider? timeProvider)
    {
        options.Validate();
        Model = model;
        Options = options;
        _admission = new Admission(options.MaxSequences + options.MaxWaitingRequests, options.MaxSequencesPerCaller);
        _resume = () => _wake.Release();
        _release = state => _admission.Release(state.Caller, state.Sampling.N);
        _core = new EngineCore(model, runner, createCpuRunner, options, timeProvider ?? TimeProvider.System);
        _thread = new Thread(Loop) { IsBackground = true, Name = "kiln-engine" };
        _thread.Start();
    }

    public ModelDescription Model { get; }

    public EngineOptions Options { get; }

    public ModelConfig Config => Model.Config;

    /// <summary>Longest prompt plus output one request may have.</summary>
    public int MaxModelLength => _core.MaxModelLength;

    public int TensorParallelSize => _core.Runner.TensorParallelSize;

    /// <summary>Requests handed to the engine that its thread has not yet taken from the inbox.</summary>
    internal int InboxRequests => Volatile.Read(ref _inboxRequests);

    /// <summary>Test seam: runs after a call's requests are validated and reserved, before they are handed to the engine.</summary>
    internal Action? BeforeHandoff { get; set; }

    /// <summary>
    /// Queues a request and returns its event stream. Fails fast with <see cref="EngineOverloadedException"/> when the
    /// engine (or the request's caller) has no room, and with <see cref="ArgumentException"/> when the request cannot
    /// be served at all.
    /// </summary>
    public IAsyncEnumerable<TokenEvent> Submit(GenerationRequest request, CancellationToken cancellationToken = default) =>
        SubmitAll([request], cancellationToken)[0];

    /// <summary>
    /// Queues the requests of one call (a completions call with several prompts) together: every one is validated and
    /// tokenized first, and then room for all their samples is taken at once, so the call is admitted whole or refused
    /// whole and a refusal leaves nothing in the queue. The streams are in the order of the requests.
    /// </summary>
    public IReadOnlyList<IAsyncEnumerable<TokenEvent>> SubmitAll(IReadOnlyList<GenerationRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ObjectDisposedException.ThrowIf(_stopping, this);
        var prompts = new int[requests.Count][];
        var maxTokens = new int[requests.Count];
        int sequences = 0;
        for (int i = 0; i < requests.Count; i++)
        {
            var sampling = requests[i].Sampling;
            sampling.Validate();
            if (sampling.N > Options.MaxSequences)
            {
                throw Admission.TooMany("n", $"n is {sampling.N}, but the engine runs at most {Options.MaxSequences} sequences at once");
            }

            prompts[i] = Tokenize(requests[i]);
            maxTokens[i] = sampling.MaxTokens ?? (MaxModelLength - prompts[i].Length);
            _core.ValidateFits(prompts[i], maxTokens[i]);
            sequences += sampling.N;
        }

        _admission.Validate(sequences);
        string caller = requests.Count > 0 ? requests[0].Caller ?? string.Empty : string.Empty;
        if (requests.Any(r => (r.Caller ?? string.Empty) != caller))
        {
            throw new ArgumentException("the requests of one call must have one caller", nameof(requests));
        }

        _admission.Reserve(caller, sequences);
        BeforeHandoff?.Invoke();
        var streams = new IAsyncEnumerable<TokenEvent>[requests.Count];
        for (int i = 0; i < requests.Count; i++)
        {
            streams[i] = Enqueue(requests[i], prompts[i], maxTokens[i], cancellationToken);
        }

        return streams;
    }

    private IAsyncEnumerable<TokenEvent> Enqueue(GenerationRequest request, int[] prompt, int maxTokens, CancellationToken cancellationToken)
    {
        var state = new RequestState(request.RequestId ?? $"req-{Interlocked.Increment(ref _nextId)}", request, prompt.Length, maxTokens, Options.OutputBufferTokens * request.Sampling.N)
        {
            Resumed = _resume,
            Released = _release,
        };
        _core.CreateSequences(state, prompt);
        Interlocked.Increment(ref _inboxRequests);
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

        lock (_handoff)
        {
            if (_stopping)
            {
                state.Registration.Dispose();
                _release(state);
                throw new ObjectDisposedException(nameof(InferenceEngine), "the engine was shut down");
            }

            _inbox.Enqueue(state);
        }

        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
            // Dispose ran after the hand-off: its drain of the inbox has aborted this request, which its stream reports.
        }

        return ReadAsync(state, cancellationToken);
    }

    /// <summary>Prompt token count the engine would use for a request (for validation and usage before running it).</summary>
    public int CountPromptTokens(GenerationRequest request) => Tokenize(request).Length;

    /// <summary>The engine's load; <see cref="EngineStats.WaitingRequests"/> counts requests not yet drained from the inbox too.</summary>
    public EngineStats GetStats() => _core.Stats(
        waitingRequests: Volatile.Read(ref _inboxRequests) + _core.PublishedWaiting,
        inboxPromptTokens: Interlocked.Read(ref _inboxPromptTokens),
        inboxDecodeTokens: Interlocked.Read(ref _inboxDecodeTokens));

    private int[] Tokenize(GenerationRequest request)
    {
        int[] ids;
        if (request.PromptTokenIds is { } given)
        {
            ids = [.. given];
        }
        else
        {
            string text = request.Prompt ?? throw new ArgumentException("the request has neither a prompt nor prompt token ids");
            var tokenizer = Model.RequireTokenizer();

            // Bounded before it is tokenized: no token is longer than the vocabulary's longest, so a text longer than the
            // context times that (with room for normalization) cannot fit, and costs nothing to refuse.
            long bound = 2L * MaxModelLength * Math.Max(tokenizer.MaxTokenLength, 1);
            if (text.Length > bound)
            {
                throw new ContextLengthExceededException($"the prompt has {text.Length} characters, more than the {bound} that could fit the context length of {MaxModelLength} tokens");
            }

            ids = [.. tokenizer.Encode(text, request.AddSpecialTokens)];
        }

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
                state.OnRead();
                yield return item;
            }
        }
    }

    private void Loop()
    {
        while (!_stopping)
        {
            // Admitted requests are published as pending tokens before they leave the inbox's, so the stats never miss
            // them in between (they may count them twice for that instant: the safe side for a scaler).
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
                Interlocked.Add(ref _inboxRequests, -drained);
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
                _wake.Wait();
                continue;
            }

            if (!_core.Step())
            {
                // Work is waiting but none can run right now (the pool is full, or every caller stopped reading);
                // wait for a change, and look again now and then for stalled readers' timeouts.
                _wake.Wait(TimeSpan.FromMilliseconds(50));
            }
        }
    }

    public void Dispose()
    {
        lock (_handoff)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
        }

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
