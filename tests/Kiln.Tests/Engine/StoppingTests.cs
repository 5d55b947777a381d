using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Engine;

/// <summary>
/// A generation ends on a stop string, a stop token or the model's EOS with finish reason stop, and a stop string is
/// not emitted, even when it spans two tokens. Every case first runs greedily to a length, then again with a stop
/// taken from that run's own output, so the expected text is known without the code under test deciding it.
/// </summary>
public sealed class StoppingTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task StopStringAcrossTwoTokens_IsNotEmitted_AndFinishesWithStop()
    {
        using var engine = fixture.CreateEngine();
        int[] prompt = EngineTestModel.Prompt(7, 12);
        var free = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 32, IgnoreEos = true });
        Assert.Equal(FinishReason.Length, free.Finish);

        // The last character of one token's text and the first of the next: only a matcher that holds text back
        // across tokens can catch it.
        var (stop, end) = SpanningStop(free.Pieces);
        var stopped = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 32, IgnoreEos = true, Stop = [stop] });

        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(end, stopped.Text);
        Assert.DoesNotContain(stop, stopped.Text, StringComparison.Ordinal);
        Assert.True(stopped.Pieces.Count < free.Pieces.Count, "generation went on past the stop string");
    }

    [Fact]
    public async Task StopTokenId_EndsTheGenerationThereWithStop()
    {
        using var engine = fixture.CreateEngine();
        int[] prompt = EngineTestModel.Prompt(8, 12);
        var free = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 24, IgnoreEos = true });
        int stopToken = free.Tokens[5];
        int first = free.Tokens.IndexOf(stopToken);

        var stopped = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 24, IgnoreEos = true, StopTokenIds = [stopToken] });

        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(free.Tokens.Take(first + 1), stopped.Tokens);
    }

    [Fact]
    public async Task ModelEos_EndsTheGenerationWithStop_UnlessIgnored()
    {
        // An engine whose model names as its EOS the token greedy decoding reaches at step 4.
        int[] prompt = EngineTestModel.Prompt(9, 12);
        List<int> freeTokens;
        using (var plain = fixture.CreateEngine())
        {
            freeTokens = (await RunAsync(plain, prompt, new SamplingParams { Temperature = 0, MaxTokens = 16, IgnoreEos = true })).Tokens;
        }

        int eos = freeTokens[4];
        var model = fixture.Model;
        var description = new ModelDescription(model.Description.Source, model.Config, model.Tokenizer, model.BosTokenId, [eos]);
        var options = new EngineOptions { BlockSize = 4, KvCacheBytes = 4 << 20, MaxBatchedTokens = 64, MaxSequences = 4, Threads = 2 };
        using var engine = new InferenceEngine(description, new CpuModelRunner(model, maxBatchTokens: 64, maxContext: 512), options);

        var stopped = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 16 });
        var ignored = await RunAsync(engine, prompt, new SamplingParams { Temperature = 0, MaxTokens = 16, IgnoreEos = true });

        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(freeTokens.Take(freeTokens.IndexOf(eos) + 1), stopped.Tokens);
        Assert.Equal(FinishReason.Length, ignored.Finish);
        Assert.Equal(freeTokens, ignored.Tokens);
    }

    /// <summary>A two-character stop string spanning the boundary of two non-empty pieces, and the text before its first occurrence.</summary>
    internal static (string Stop, string TextBefore) SpanningStop(IReadOnlyList<string> pieces)
    {
        string text = string.Concat(pieces);
        int offset = 0;
        for (int k = 0; k + 1 < pieces.Count; k++)
        {
            offset += pieces[k].Length;
            if (pieces[k].Length > 0 && pieces[k + 1].Length > 0 && !char.IsSurrogate(pieces[k][^1]) && !char.IsSurrogate(pieces[k + 1][0]) && k >= 2)
            {
                string stop = string.Concat(pieces[k][^1], pieces[k + 1][0]);
                if (text.IndexOf(stop, StringComparison.Ordinal) == offset - 1)
                {
                    return (stop, text[..(offset - 1)]);
                }
            }
        }

        throw new InvalidOperationException($"no stop string spans two pieces of \"{text}\"");
    }

    private static async Task<Run> RunAsync(InferenceEngine engine, int[] prompt, SamplingParams sampling)
    {
        var run = new Run();
        await foreach (var e in engine.Submit(new GenerationRequest { PromptTokenIds = prompt, Sampling = sampling }, Ct))
        {
            if (e.TokenId >= 0)
            {
                run.Tokens.Add(e.TokenId);
            }

            run.Pieces.Add(e.Text ?? string.Empty);
            run.Finish = e.FinishReason ?? run.Finish;
        }

        return run;
    }

    private sealed class Run
    {
        public List<int> Tokens { get; } = [];

        public List<string> Pieces { get; } = [];

        public string Text => string.Concat(Pieces);

        public FinishReason? Finish { get; set; }
    }
}
