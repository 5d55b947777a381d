using System.Threading.Channels;
using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Engine;

/// <summary>
/// One submitted request: its samples, its event channel and its usage counts. Touched by the engine thread only,
/// except <see cref="Cancelled"/> and the unread count, which the caller's reader lowers as it reads.
/// </summary>
internal sealed class RequestState(string id, GenerationRequest request, int promptLength, int maxTokens, int bufferLimit)
{
    private volatile bool _cancelled;
    private int _unread;
    private int _released;

    public string Id { get; } = id;

    public int Priority { get; } = request.Priority;

    /// <summary>Who asked (an API key's id, a client address): the scheduler shares running slots fairly among callers.</summary>
    public string Caller { get; } = request.Caller ?? string.Empty;

    public SamplingParams Sampling { get; } = request.Sampling;

    public int PromptLength { get; } = promptLength;

    public int MaxTokens { get; } = maxTokens;

    public Channel<TokenEvent> Events { get; } = Channel.CreateUnbounded<TokenEvent>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });

    public List<Sequence> Sequences { get; } = [];

    public int SamplesLeft { get; set; } = request.Sampling.N;

    public int CompletionTokens { get; set; }

    public int CachedPromptTokens { get; set; }

    public bool Forked { get; set; }

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Called once when the reader, after the buffer was full, reads it below the bound (wakes the engine).</summary>
    public Action? Resumed { get; init; }

    /// <summary>Called once when the request ends, however it ends (the engine gives back its admission places).</summary>
    public Action<RequestState>? Released { get; init; }

    /// <summary>Engine thread only: when the caller's buffer was first seen full (a <see cref="TimeProvider"/> timestamp), or 0.</summary>
    public long StalledSince { get; set; }

    public bool Cancelled => _cancelled;

    public bool IsDone => SamplesLeft == 0;

    /// <summary>
    /// The caller has left <c>bufferLimit</c> events unread (a client that stopped reading): the scheduler skips the
    /// request's samples, which keep their KV blocks, until the caller reads again.
    /// </summary>
    public bool OutputFull => Volatile.Read(ref _unread) >= bufferLimit;

    public void Cancel() => _cancelled = true;

    /// <summary>Engine thread: queues an event for the caller (the channel is unbounded; the scheduler enforces the bound).</summary>
    public void Write(TokenEvent e)
    {
        Interlocked.Increment(ref _unread);
        Events.Writer.TryWrite(e);
    }

    /// <summary>Reader: one event was taken.</summary>
    public void OnRead()
    {
        if (Interlocked.Decrement(ref _unread) == bufferLimit - 1)
        {
            Resumed?.Invoke();
        }
    }

    /// <summary>Engine thread: completes the event stream and gives the request's places back, once.</summary>
    public void Complete(Exception? error)
    {
        Events.Writer.TryComplete(error);
        Registration.Dispose();
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            Released?.Invoke(this);
        }
    }
}
