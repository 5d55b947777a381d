using System.Threading.Channels;
using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Engine;

/// <summary>One submitted request: its samples, its event channel and its usage counts. Touched by the engine thread only, except <see cref="Cancelled"/>.</summary>
internal sealed class RequestState(string id, GenerationRequest request, int promptLength, int maxTokens)
{
    private volatile bool _cancelled;

    public string Id { get; } = id;

    public int Priority { get; } = request.Priority;

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

    public bool Cancelled => _cancelled;

    public void Cancel() => _cancelled = true;

    public bool IsDone => SamplesLeft == 0;
}
