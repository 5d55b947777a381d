using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Engine;

/// <summary>
/// What the engine thread owns: the model runner, the KV pool and its block manager, the scheduler and the output
/// processor. <see cref="Step"/> is one iteration of continuous batching. Only the engine thread calls into it,
/// except <see cref="Stats"/>, which reads values published with volatile writes.
/// </summary>
internal sealed class EngineCore : IDisposable
{
    private readonly ModelDescription _model;
    private readonly BlockManager _blocks;
    private readonly IPagedKvCache _cache;
    private readonly Scheduler _scheduler;
    private readonly OutputProcessor _output;
    private readonly float[] _logits;
    private readonly int[] _next;
    private readonly DeviceSampling[] _draws;
    private readonly HashSet<RequestState> _live = [];
    private readonly Func<Kiln.Tokenization.StreamingDecoder>? _newDecoder;
    private readonly TimeProvider _time;
    private readonly TimeSpan _stalledReaderTimeout;
    private readonly List<RequestState> _stalled = [];
    private long _arrivals;

    // Published for Stats() by the engine thread, once a step; the rates over windows of about a second.
    private readonly PublishedStats _published = new();
    private double _promptRate;
    private double _outputRate;
    private long _windowStart;
    private long _windowPrompt;
    private long _windowOutput;

    /// <summary>
    /// Sizes the KV pool and the context from <paramref name="runner"/>, or, when it is null, from the CPU backend's
    /// defaults, and then builds that backend with <paramref name="createCpuRunner"/> for the context length found.
    /// </summary>
    public EngineCore(ModelDescription model, IModelRunner? runner, Func<int, IModelRunner>? createCpuRunner, EngineOptions options, TimeProvider time)
    {
        _model = model;
        _time = time;
        _windowStart = time.GetTimestamp();
        _stalledReaderTimeout = TimeSpan.FromSeconds(options.StalledReaderTimeoutSeconds);
        var config = model.Config;
        long blockBytes = runner?.KvBlockBytes(options.BlockSize) ?? ModelRunners.CpuKvBlockBytes(config, options.TensorParallelSize, options.BlockSize);
        long available = runner?.KvMemoryAvailable ?? IModelRunner.HostMemoryAvailable;
        long budget = options.KvCacheBytes ?? (long)(available * options.KvCacheMemoryFraction);
        int requestedLength = options.MaxModelLength > 0 ? Math.Min(options.MaxModelLength, config.MaxPositions) : config.MaxPositions;

        // Unless sized in bytes, the pool holds what the running sequences can hold at most, every one at full length,
        // capped by the memory share: a block beyond that is never in use, and no margin is added because free blocks
        // already keep the prefix cache and copy-on-write only replaces a shared block in a sequence's own table.
        long usable = (long)options.MaxSequences * ((requestedLength + options.BlockSize - 1) / options.BlockSize);
        long fitting = budget / blockBytes;
        int blockCount = (int)Math.Min(int.MaxValue / 2, options.KvCacheBytes is null ? Math.Min(usable, fitting) : fitting);
        if (blockCount < 1)
        {
            throw new ArgumentException($"a KV pool of {budget} bytes holds no block of {blockBytes} bytes");
        }

        MaxModelLength = (int)Math.Min(requestedLength, (long)blockCount * options.BlockSize);
        int blocksPerSequence = (MaxModelLength + options.BlockSize - 1) / options.BlockSize;

        Runner = runner ?? createCpuRunner?.Invoke(MaxModelLength) ?? throw new ArgumentNullException(nameof(runner), "the engine needs a runner, or the model's weights to build the CPU backend from");
        if (Runner.MaxBatchTokens < options.MaxBatchedTokens)
        {
            throw new ArgumentException($"the runner takes {Runner.MaxBatchTokens} tokens a step, fewer than max batched tokens {options.MaxBatchedTokens}");
        }

        _blocks = new BlockManager(blockCount, options.BlockSize, options.PrefixCaching);
        _cache = Runner.CreateKvCache(blockCount, options.BlockSize, options.MaxSequences, blocksPerSequence);
        _scheduler = new Scheduler(_blocks, options.MaxBatchedTokens, options.MaxSequences, blocksPerSequence);
        _newDecoder = model.Tokenizer is { } tokenizer ? () => tokenizer.CreateStreamingDecoder(skipSpecialTokens: true, continuesText: true) : null;
        _output = new OutputProcessor(_scheduler, new Sampler(config.VocabSize), model.EosTokenIds, MaxModelLength, _newDecoder);
        _logits = new float[(long)options.MaxSequences * config.VocabSize];
        _next = new int[options.MaxSequences];
        _draws = new DeviceSampling[options.MaxSequences];
        PublishStats(); // the empty engine's figures (the pool's size), before any step
    }

    public IModelRunner Runner { get; }

    public int MaxModelLength { get; }

    public bool HasWork => _scheduler.HasWork;

    /// <summary>Sequences waiting for admission as of the last step (published for admission control).</summary>
    public int PublishedWaiting => _published.Read().WaitingSequences;

    public void ValidateFits(int[] prompt, int maxTokens)
    {
        if (maxTokens < 1)
        {
            // max_tokens was left to the engine and the prompt alone fills the context.
            throw new ContextLengthExceededException($"the prompt has {prompt.Length} tokens, which leaves no room for output in the context length of {MaxModelLength}");
        }

        if ((long)prompt.Length + maxTokens > MaxModelLength)
        {
            throw new ContextLengthExceededException($"the prompt has {prompt.Length} tokens; with max_tokens {maxTokens} that exceeds the context length of {MaxModelLength}");
        }
    }

    /// <summary>Builds sample 0 of a request (on the caller's thread; it is not yet visible to the engine thread).</summary>
    public void CreateSequences(RequestState state, int[] prompt)
    {
        var sampling = new SamplingState(state.Sampling, 0);
        sampling.ObservePrompt(prompt);
        var sequence = new Sequence(state, 0, prompt, prompt.Length, Interlocked.Increment(ref _arrivals), sampling)
        {
            Decoder = _newDecoder?.Invoke(),
            StopMatcher = state.Sampling.Stop is { Length: > 0 } stops ? new StopStringMatcher(stops) : null,
        };
        state.Sequences.Add(sequence);
    }

    public void Admit(RequestState state)
    {
        if (state.Cancelled)
        {
            _output.Abort(state, null);
            return;
        }

        _live.Add(state);
        _scheduler.AddWaiting(state.Sequences[0]);
    }

    public void Abort(RequestState state, Exception? error)
    {
        _output.Abort(state, error);
        _live.Remove(state);
    }

    /// <summary>Fills the step's device draws; false when a sequence must be sampled on the host.</summary>
    private bool PrepareDeviceDraws(List<Sequence> sequences)
    {
        for (int s = 0; s < sequences.Count; s++)
        {
            if (!DeviceSampling.Allows(sequences[s].Request.Sampling))
            {
                return false;
            }

            _draws[s] = DeviceSampling.For(sequences[s].Request.Sampling, sequences[s].Sampling);
        }

        return true;
    }

    /// <summary>Runs one step; false when nothing could be scheduled.</summary>
    public bool Step()
    {
        CancelStalledReaders();
        var step = _scheduler.Schedule();
        if (step.IsEmpty)
        {
            PublishStats();
            return false;
        }

        int rows = step.Sequences.Count;
        var logits = _logits.AsSpan(0, rows * _model.Config.VocabSize);
        bool drawnOnDevice;
        try
        {
            foreach (var (source, destination) in step.BlockCopies)
            {
                _cache.CopyBlock(source, destination);
            }

            _cache.Bind(step.BlockTables, step.BlockTableStride, rows);
            var batch = new ForwardBatch(
                step.TokenIds.AsSpan(0, step.TokenCount),
                step.Positions.AsSpan(0, step.TokenCount),
                step.SequenceRows.AsSpan(0, rows),
                step.QueryLengths.AsSpan(0, rows));
            // On a backend that samples on the device, a step whose draws it can make returns ids, not [rows x vocab] logits.
            drawnOnDevice = PrepareDeviceDraws(step.Sequences) && Runner.TryForwardSampled(batch, _cache, _draws.AsSpan(0, rows), _next.AsSpan(0, rows));
            if (!drawnOnDevice)
            {
                Runner.Forward(batch, _cache, logits);
            }
        }
        catch (Exception e)
        {
            // The whole step failed (a backend error): fail the requests in it, keep serving the others.
            foreach (var sequence in step.Sequences.ToArray())
            {
                Abort(sequence.Request, e);
            }

            PublishStats();
            return true;
        }

        _windowPrompt += step.PrefillTokens;
        long outputBefore = _output.OutputTokens;
        for (int s = 0; s < rows; s++)
        {
            var sequence = step.Sequences[s];
            if (sequence.Status != SequenceStatus.Running)
            {
                continue; // its request was aborted while processing an earlier row
            }

            _scheduler.Computed(sequence, step.QueryLengths[s]);
            if (sequence.PendingTokens > 0)
            {
                continue; // a prefill chunk: no token to sample yet
            }

            var request = sequence.Request;
            try
            {
                if (drawnOnDevice)
                {
                    _output.OnToken(sequence, _next[s]);
                }
                else
                {
                    _output.OnLogits(sequence, logits.Slice(s * _model.Config.VocabSize, _model.Config.VocabSize));
                }
            }
            catch (Exception e)
            {
                // One request's failure (say, in its stop matcher) fails that request alone.
                _output.Abort(request, e);
            }

            if (request.IsDone)
            {
                _live.Remove(request);
            }
        }

        _windowOutput += _output.OutputTokens - outputBefore;
        PublishStats();
        return true;
    }

    /// <summary>
    /// Cancels the requests whose callers have left their output buffer full for longer than the timeout (a client
    /// that stopped reading but kept its connection): their blocks return to the pool.
    /// </summary>
    private void CancelStalledReaders()
    {
        if (_stalledReaderTimeout <= TimeSpan.Zero)
        {
            return;
        }

        long now = _time.GetTimestamp();
        foreach (var request in _live)
        {
            if (!request.OutputFull)
            {
                request.StalledSince = 0;
            }
            else if (request.StalledSince == 0)
            {
                request.StalledSince = now;
            }
            else if (_time.GetElapsedTime(request.StalledSince, now) >= _stalledReaderTimeout)
            {
                _stalled.Add(request);
            }
        }

        foreach (var request in _stalled)
        {
            Abort(request, null);
        }

        _stalled.Clear();
    }

    public void PublishStats()
    {
        long prompt = 0;
        long decode = 0;
        int runningRequests = 0;
        foreach (var request in _live)
        {
            bool running = false;
            foreach (var sequence in request.Sequences)
            {
                if (sequence.Status == SequenceStatus.Finished)
                {
                    continue;
                }

                running |= sequence.Status == SequenceStatus.Running;
                prompt += Math.Max(0, sequence.PendingTokens - 1) + (sequence.OutputLength == 0 ? 1 : 0);
                decode += request.MaxTokens - sequence.OutputLength;
            }

            if (!request.Forked)
            {
                decode += (long)(request.Sampling.N - 1) * request.MaxTokens;
            }

            runningRequests += running ? 1 : 0;
        }

        var elapsed = _time.GetElapsedTime(_windowStart);
        if (elapsed >= TimeSpan.FromSeconds(1) || !_scheduler.HasWork)
        {
            double seconds = Math.Max(elapsed.TotalSeconds, 1e-3);
            _promptRate = _windowPrompt / seconds;
            _outputRate = _windowOutput / seconds;
            _windowPrompt = 0;
            _windowOutput = 0;
            _windowStart = _time.GetTimestamp();
        }

        _published.Publish(new PublishedStats.Figures(
            _scheduler.WaitingCount, _scheduler.RunningCount, runningRequests, prompt, decode,
            _blocks.BlockCount, _blocks.UsedBlockCount, _blocks.FreeBlockCount, _blocks.CachedBlockCount,
            _blocks.PrefixLookupBlocks, _blocks.PrefixHitBlocks, _promptRate, _outputRate,
            _scheduler.Preemptions, _scheduler.PromptTokensAdmitted, _scheduler.PromptTokensCached));
    }

    /// <summary>
    /// The engine's figures as last published. <paramref name="waitingRequests"/> is the engine's own count of requests
    /// not yet running (its inbox and the scheduler's queue, one counter), the inbox figures what it has not yet drained.
    /// </summary>
    public EngineStats Stats(int waitingRequests, long inboxPromptTokens, long inboxDecodeTokens)
    {
        var f = _published.Read();
        return new EngineStats
        {
            WaitingRequests = waitingRequests,
            RunningRequests = f.RunningRequests,
            RunningSequences = f.RunningSequences,
            PendingPromptTokens = f.PendingPromptTokens + inboxPromptTokens,
            PendingDecodeTokens = f.PendingDecodeTokens + inboxDecodeTokens,
            KvBlocksTotal = f.KvBlocksTotal,
            KvBlocksUsed = f.KvBlocksUsed,
            KvBlocksFree = f.KvBlocksFree,
            KvBlocksCached = f.KvBlocksCached,
            PrefixCacheHitRate = f.PrefixLookupBlocks == 0 ? 0 : (double)f.PrefixHitBlocks / f.PrefixLookupBlocks,
            PromptTokensPerSecond = f.PromptTokensPerSecond,
            OutputTokensPerSecond = f.OutputTokensPerSecond,
            Preemptions = f.Preemptions,
            CompletedRequests = _output.CompletedRequests,
            FinishedStop = _output.FinishedStop,
            FinishedLength = _output.FinishedLength,
            FinishedAborted = _output.FinishedAborted,
            PromptTokensAdmitted = f.PromptTokensAdmitted,
            PromptTokensCached = f.PromptTokensCached,
            OutputTokens = _output.OutputTokens,
            TensorParallelSize = Runner.TensorParallelSize,
            DeviceIds = [.. Enumerable.Range(0, Runner.TensorParallelSize)],
            Device = Runner.Device,
        };
    }

    public void Dispose()
    {
        foreach (var request in _live.ToArray())
        {
            Abort(request, new ObjectDisposedException(nameof(InferenceEngine), "the engine was shut down"));
        }

        Runner.Dispose();
        _cache.Dispose();
    }
}
