using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;

namespace Kiln.Runtime.Generation;

/// <summary>One generated token: its id and the text it completes (empty while a UTF-8 character is still partial).</summary>
public readonly record struct GeneratedToken(int Id, string Text);

/// <summary>
/// Generates one sequence on the CPU backend (one runner, or a tensor-parallel group): prefill the prompt in chunks,
/// then decode token by token, with the sequence's blocks laid out in order in a private KV pool. The serving engine
/// batches many sequences; this is the single-stream path of the CLI and tests.
/// </summary>
public sealed class Generator : IDisposable
{
    private const int BlockSize = 16;
    private readonly LoadedModel _model;
    private readonly IModelRunner _runner;
    private readonly IPagedKvCache _cache;
    private readonly float[] _logits;
    private readonly int[] _positions;

    public Generator(LoadedModel model, int maxContext = 0, int prefillChunk = 256, int tensorParallelSize = 1, int threads = 0)
    {
        _model = model;
        MaxContext = maxContext > 0 ? Math.Min(maxContext, model.Config.MaxPositions) : Math.Min(model.Config.MaxPositions, 4096);
        _runner = ModelRunners.CreateCpu(model, tensorParallelSize, prefillChunk, MaxContext, threads);
        int blocks = (MaxContext + BlockSize - 1) / BlockSize;
        _cache = _runner.CreateKvCache(blocks, BlockSize, 1, blocks);
        _cache.Bind(Enumerable.Range(0, blocks).ToArray(), blocks, 1);
        _logits = new float[prefillChunk * model.Config.VocabSize];
        _positions = new int[prefillChunk];
    }

    public int MaxContext { get; }

    public IModelRunner Runner => _runner;

    /// <summary>
    /// Runs <paramref name="ids"/> from position <paramref name="start"/> (in chunks of the runner's batch size) and
    /// returns the logits of the last token, valid until the next call.
    /// </summary>
    public ReadOnlySpan<float> Prefill(ReadOnlySpan<int> ids, int start = 0)
    {
        if (ids.IsEmpty)
        {
            throw new ArgumentException("no tokens to run", nameof(ids));
        }

        ReadOnlySpan<float> logits = default;
        for (int offset = 0; offset < ids.Length; offset += _runner.MaxBatchTokens)
        {
            int n = Math.Min(_runner.MaxBatchTokens, ids.Length - offset);
            logits = Evaluate(ids.Slice(offset, n), start + offset, allPositions: false);
        }

        return logits;
    }

    /// <summary>Logits at every position of <paramref name="ids"/> ([ids.Length x vocab]), run in chunks.</summary>
    public float[] AllLogits(ReadOnlySpan<int> ids)
    {
        int vocab = _model.Config.VocabSize;
        var all = new float[ids.Length * vocab];
        for (int start = 0; start < ids.Length; start += _runner.MaxBatchTokens)
        {
            int n = Math.Min(_runner.MaxBatchTokens, ids.Length - start);
            Evaluate(ids.Slice(start, n), start, allPositions: true).CopyTo(all.AsSpan(start * vocab));
        }

        return all;
    }

    /// <summary>
    /// Streams up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>, stopping at EOS when asked
    /// (unless <see cref="SamplingParams.IgnoreEos"/>) and at <see cref="SamplingParams.StopTokenIds"/>. Stop strings
    /// are the caller's (see <see cref="StopStringMatcher"/>).
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> prompt, int maxTokens, SamplingParams sampling, bool stopAtEos = true, CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt has no tokens", nameof(prompt));
        }

        if (prompt.Count + maxTokens > MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(maxTokens), $"{prompt.Count} prompt tokens + {maxTokens} new tokens exceed the context of {MaxContext}");
        }

        var sampler = new Sampling.Sampler(_model.Config.VocabSize);
        var state = new SamplingState(sampling);
        var decoder = _model.Tokenizer?.CreateStreamingDecoder();
        int[] promptIds = [.. prompt];
        state.ObservePrompt(promptIds);
        int next = sampler.Sample(Prefill(promptIds), sampling, state).Id;
        int position = promptIds.Length;
        int[] single = new int[1];
        for (int produced = 0; produced < maxTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool last = produced == maxTokens - 1 || (stopAtEos && !sampling.IgnoreEos && _model.EosTokenIds.Contains(next))
                || Array.IndexOf(sampling.StopTokenIds, next) >= 0;
            string text = decoder?.Append(next) ?? string.Empty;
            if (last)
            {
                // Whatever bytes are still pending (an unfinished UTF-8 sequence) go out with the final token.
                text += decoder?.Flush() ?? string.Empty;
            }

            yield return new GeneratedToken(next, text);
            if (last)
            {
                yield break;
            }

            single[0] = next;
            next = sampler.Sample(Evaluate(single, position++, allPositions: false), sampling, state).Id;
        }
    }

    private ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> ids, int start, bool allPositions)
    {
        var positions = _positions.AsSpan(0, ids.Length);
        for (int i = 0; i < positions.Length; i++)
        {
            positions[i] = start + i;
        }

        Span<int> sequence = [0];
        Span<int> length = [ids.Length];
        var logits = _logits.AsSpan(0, (allPositions ? ids.Length : 1) * _model.Config.VocabSize);
        _runner.Forward(new ForwardBatch(ids, positions, sequence, length), _cache, logits, allPositions);
        return logits;
    }

    public void Dispose()
    {
        _runner.Dispose();
        _cache.Dispose();
    }
}
