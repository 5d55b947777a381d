using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Kiln.Functions.Hosting;
using Kiln.Functions.OpenAi;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Sampling;

namespace Kiln.Functions.Api;

/// <summary>
/// One API call on the engine: its prompts submitted (one engine request each, all cancelled together when the
/// caller goes away or fails), their events merged with choice indexes (prompt * n + sample), latency metrics
/// observed and usage summed. Submission errors become OpenAI errors: 429 when overloaded, 400 when invalid.
/// </summary>
public sealed class InferenceCall : IDisposable
{
    private const int MergeBuffer = 64;

    private readonly IReadOnlyList<IAsyncEnumerable<TokenEvent>> _streams;
    private readonly CancellationTokenSource _cts;
    private readonly KilnMetrics _metrics;
    private readonly int _n;
    private readonly long _submitted = Stopwatch.GetTimestamp();
    private readonly IFirstTokenFeature? _firstToken;
    private int _prompt;
    private int _cached;
    private int _completion;

    private InferenceCall(IReadOnlyList<IAsyncEnumerable<TokenEvent>> streams, CancellationTokenSource cts, KilnMetrics metrics, int n, IFirstTokenFeature? firstToken)
    {
        _streams = streams;
        _cts = cts;
        _metrics = metrics;
        _n = n;
        _firstToken = firstToken;
    }

    /// <summary>How many choices the answer has: prompts times n.</summary>
    public int ChoiceCount => _streams.Count * _n;

    /// <summary>The call's usage, complete once every event has been read.</summary>
    public Usage Usage => new(_prompt, _cached, _completion);

    /// <summary>
    /// Submits every prompt at <paramref name="priority"/>, all together: admitted whole or refused whole.
    /// <paramref name="promptParam"/> names the request field a prompt error points at (messages or prompt);
    /// <paramref name="caller"/> is who asks (fair shares and per-caller bounds); <paramref name="firstToken"/>, when
    /// given, hears of the first token.
    /// </summary>
    public static InferenceCall Start(
        InferenceEngine engine, IReadOnlyList<PromptInput> prompts, SamplingParams sampling, bool addSpecialTokens,
        string requestId, string promptParam, KilnMetrics metrics, int priority, string? caller, CancellationToken cancellationToken, IFirstTokenFeature? firstToken = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(prompts);
        var requests = new GenerationRequest[prompts.Count];
        for (int i = 0; i < prompts.Count; i++)
        {
            requests[i] = new GenerationRequest
            {
                Prompt = prompts[i].Text,
                PromptTokenIds = prompts[i].TokenIds,
                AddSpecialTokens = addSpecialTokens,
                Sampling = sampling,
                Priority = priority,
                Caller = caller,
                RequestId = prompts.Count == 1 ? requestId : $"{requestId}-{i}",
            };
        }

        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            return new InferenceCall(engine.SubmitAll(requests, cts.Token), cts, metrics, sampling.N, firstToken);
        }
        catch (Exception e) when (e is EngineOverloadedException or ArgumentException or (InvalidOperationException and not ObjectDisposedException))
        {
            cts.Dispose();
            throw e switch
            {
                EngineOverloadedException => OpenAiException.Overloaded(e.Message),
                ArgumentException a => MapArgumentError(a, promptParam),
                _ => OpenAiException.BadRequest(e.Message, promptParam), // a text prompt for a model without a tokenizer
            };
        }
    }

    /// <summary>
    /// The engine's validation errors name the OpenAI parameter (SamplingParams.Validate); the rest concern the
    /// prompt: too long for the context, token ids outside the vocabulary, empty.
    /// </summary>
    public static OpenAiException MapArgumentError(ArgumentException error, string promptParam)
    {
        ArgumentNullException.ThrowIfNull(error);
        string message = error.Message;
        int cut = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
        if (cut > 0)
        {
            message = message[..cut];
        }

        // The engine words its rules "max_tokens must be >= 1"; OpenAI's read "Invalid 'max_tokens': ...".
        if (error.ParamName is { } name && message.StartsWith(name + " ", StringComparison.Ordinal))
        {
            message = $"Invalid '{name}': {message[(name.Length + 1)..]}.";
        }

        if (error.ParamName is "temperature" or "top_p" or "top_k" or "min_p" or "repetition_penalty" or "presence_penalty"
            or "frequency_penalty" or "max_tokens" or "n" or "logprobs" or "stop" or "stop_token_ids" or "messages" or "tools")
        {
            return OpenAiException.BadRequest(message, error.ParamName, "invalid_value");
        }

        return OpenAiException.BadRequest(message, promptParam, error is ContextLengthExceededException ? "context_length_exceeded" : "invalid_value");
    }

    /// <summary>Every event of every prompt, tagged with its choice index, in the order the engine produced them.</summary>
    public async IAsyncEnumerable<(int Choice, TokenEvent Event)> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        var lastToken = new long[ChoiceCount];
        bool first = true;
        await foreach (var (prompt, e) in MergeAsync(linked.Token).ConfigureAwait(false))
        {
            int choice = (prompt * _n) + e.SampleIndex;
            if (e.TokenId >= 0)
            {
                long now = Stopwatch.GetTimestamp();
                if (first)
                {
                    _firstToken?.OnFirstToken(); // before the metric: a test that sees the metric knows the job has started
                    _metrics.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(_submitted, now).TotalSeconds);
                    first = false;
                }
                else if (lastToken[choice] != 0)
                {
                    _metrics.InterTokenLatency.Observe(Stopwatch.GetElapsedTime(lastToken[choice], now).TotalSeconds);
                }

                lastToken[choice] = now;
            }

            if (e.Usage is { } usage)
            {
                _prompt += usage.PromptTokens;
                _cached += usage.CachedPromptTokens;
                _completion += usage.CompletionTokens;
            }

            yield return (choice, e);
        }

        _metrics.EndToEndLatency.Observe(Stopwatch.GetElapsedTime(_submitted).TotalSeconds); // every stream ended
    }

    private async IAsyncEnumerable<(int Prompt, TokenEvent Event)> MergeAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (_streams.Count == 1)
        {
            await foreach (var e in _streams[0].WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                yield return (0, e);
            }

            yield break;
        }

        // Several prompts run side by side in the engine; a channel interleaves their events as they come. Bounded, so a
        // caller that stops reading stops the pumps too, and the engine sees its buffers fill (backpressure).
        var channel = Channel.CreateBounded<(int, TokenEvent)>(new BoundedChannelOptions(MergeBuffer) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        var pumps = _streams.Select((stream, i) => PumpAsync(stream, i, channel.Writer, cancellationToken)).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(
            t => channel.Writer.TryComplete(t.Exception?.InnerException), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        await foreach (var item in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }

    private static async Task PumpAsync(IAsyncEnumerable<TokenEvent> stream, int prompt, ChannelWriter<(int, TokenEvent)> writer, CancellationToken cancellationToken)
    {
        await foreach (var e in stream.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            await writer.WriteAsync((prompt, e), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Cancels whatever is still running (a no-op for finished requests) and releases the token source.</summary>
    public void Dispose()
    {
        _cts.Cancel();
        _cts.Dispose();
    }
}
