using System.ClientModel;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Kiln.Runtime.Engine;
using OpenAI.Chat;
using KilnChatMessage = Kiln.Runtime.Chat.ChatMessage;
using KilnChatTemplate = Kiln.Runtime.Chat.ChatTemplate;

namespace Kiln.Tests.Functions;

/// <summary>The API as the official OpenAI .NET SDK sees it (chat, models), plus completions over raw HTTP: the SDK has no legacy completions client.</summary>
public sealed class OpenAiSdkTests(KilnServerFixture fixture) : IClassFixture<KilnServerFixture>
{
    private static readonly string ModelId = KilnServerFixture.ModelId;
    private static readonly int[] ChoiceIndexes = [0, 1, 2, 3];
    private static readonly string[] TwoPrompts = ["The cat", "The dog"];

    private KilnServer Server => fixture.Server;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Chat_NonStreamed_ReturnsTextFinishReasonAndUsage()
    {
        var chat = Server.OpenAi().GetChatClient(ModelId);
        ChatMessage[] messages = [new SystemChatMessage("You are terse."), new UserChatMessage("Tell me about the sun.")];
        ChatCompletion completion = await chat.CompleteChatAsync(messages, new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 }, Ct);

        Assert.StartsWith("chatcmpl-", completion.Id, StringComparison.Ordinal);
        Assert.Equal(ModelId, completion.Model);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.Equal(ExpectedPromptTokens(("system", "You are terse."), ("user", "Tell me about the sun.")), completion.Usage.InputTokenCount);
        Assert.Equal(completion.Usage.InputTokenCount + 8, completion.Usage.TotalTokenCount);
        Assert.NotEmpty(completion.Content[0].Text);
    }

    [Fact]
    public async Task Chat_Streamed_MatchesNonStreamedTokenByTokenAndEndsWithUsage()
    {
        var chat = Server.OpenAi().GetChatClient(ModelId);
        ChatMessage[] messages = [new UserChatMessage("Once upon a time there was a little dog.")];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        ChatCompletion whole = await chat.CompleteChatAsync(messages, options, Ct);

        var text = new StringBuilder();
        int contentUpdates = 0;
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options, Ct))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
                contentUpdates += part.Text.Length > 0 ? 1 : 0;
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage; // the SDK asks for stream_options.include_usage itself
        }

        Assert.Equal(whole.Content[0].Text, text.ToString()); // greedy: the same tokens either way
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.True(contentUpdates > 1, $"expected the text in several chunks, got {contentUpdates}");
        Assert.NotNull(usage);
        Assert.Equal(12, usage.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
    }

    [Fact]
    public async Task Chat_Streamed_StopStringAcrossTwoChunks_IsNotSentAndFinishesWithStop()
    {
        var chat = Server.OpenAi().GetChatClient(ModelId);
        ChatMessage[] messages = [new UserChatMessage("Once upon a time there was a little cat.")];
        var free = await StreamAsync(chat, messages, new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 0 });
        Assert.Equal(ChatFinishReason.Length, free.Finish);

        // Two characters on either side of a chunk boundary of that same greedy stream.
        var (stop, before) = Engine.StoppingTests.SpanningStop(free.Pieces);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 0 };
        options.StopSequences.Add(stop);
        var stopped = await StreamAsync(chat, messages, options);

        Assert.Equal(ChatFinishReason.Stop, stopped.Finish);
        Assert.Equal(before, string.Concat(stopped.Pieces));
        Assert.True(stopped.Usage!.OutputTokenCount < 24, "generation went on past the stop string");
    }

    private static async Task<(List<string> Pieces, ChatFinishReason? Finish, ChatTokenUsage? Usage)> StreamAsync(ChatClient chat, ChatMessage[] messages, ChatCompletionOptions options)
    {
        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options, Ct))
        {
            pieces.AddRange(update.ContentUpdate.Select(part => part.Text));
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        return (pieces, finish, usage);
    }

    [Fact]
    public async Task Chat_RepeatedPrompt_ReportsCachedPromptTokens()
    {
        var chat = Server.OpenAi().GetChatClient(ModelId);
        string unique = $"{Guid.NewGuid():N} the little girl saw a big happy dog in the park and they played all day long with a ball";
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 2, Temperature = 0 };
        ChatCompletion first = await chat.CompleteChatAsync([new UserChatMessage(unique)], options, Ct);
        ChatCompletion second = await chat.CompleteChatAsync([new UserChatMessage(unique)], options, Ct);

        // Every full block of the prompt but the one holding its last token (always recomputed) is served from the
        // cache; the first request could only share the template's opening with earlier requests.
        int prompt = second.Usage.InputTokenCount;
        int cached = second.Usage.InputTokenDetails.CachedTokenCount;
        Assert.Equal((prompt - 1) / 16 * 16, cached);
        Assert.True(cached > first.Usage.InputTokenDetails.CachedTokenCount, "the second request should reuse the first one's prefix blocks");
        Assert.True(cached < second.Usage.InputTokenCount);
    }

    [Fact]
    public async Task Chat_LogProbs_OnePerTokenWithTheAlternativesAsked()
    {
        var chat = Server.OpenAi().GetChatClient(ModelId);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 5, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("She went home.")], options, Ct);

        Assert.Equal(5, completion.ContentTokenLogProbabilities.Count);
        foreach (var token in completion.ContentTokenLogProbabilities)
        {
            Assert.True(token.LogProbability <= 0);
            Assert.Equal(3, token.TopLogProbabilities.Count);
            Assert.Equal(token.LogProbability, token.TopLogProbabilities[0].LogProbability, 4); // greedy picks the likeliest
        }
    }

    [Fact]
    public async Task Chat_UnknownModel_IsA404ForTheSdk()
    {
        var chat = Server.OpenAi().GetChatClient("gpt-4o");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));
        Assert.Equal(404, error.Status);
    }

    [Fact]
    public async Task Models_ListsTheServedModel()
    {
        var models = await Server.OpenAi().GetOpenAIModelClient().GetModelsAsync(Ct);
        var model = Assert.Single(models.Value);
        Assert.Equal(ModelId, model.Id);
        Assert.Equal("kiln", model.OwnedBy);
    }

    [Fact]
    public async Task Completions_TextPrompt_NonStreamed()
    {
        var body = await PostJsonAsync("v1/completions", new { model = ModelId, prompt = "Once upon a time", max_tokens = 6, temperature = 0, ignore_eos = true });
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(6, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + 6, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }

    [Fact]
    public async Task Completions_TokenPrompt_StreamedMatchesNonStreamedWithUsageLast()
    {
        int[] prompt = [300, 301, 302, 303, 304, 305, 306];
        var whole = await PostJsonAsync("v1/completions", new { model = ModelId, prompt, max_tokens = 10, temperature = 0, ignore_eos = true });
        string expected = whole.GetProperty("choices")[0].GetProperty("text").GetString()!;

        using var response = await Server.Http.PostAsJsonAsync(
            "v1/completions",
            new { model = ModelId, prompt, max_tokens = 10, temperature = 0, ignore_eos = true, stream = true, stream_options = new { include_usage = true } },
            Ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var (chunks, done) = await Sse.ReadAllAsync(response);

        Assert.True(done, "the stream must end with data: [DONE]");
        var last = chunks[^1];
        Assert.Empty(last.GetProperty("choices").EnumerateArray());
        Assert.Equal(7, last.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(10, last.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var text = string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(expected, text);
        Assert.Equal("length", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(chunks.Count > 3, "tokens arrive in separate chunks");
    }

    [Fact]
    public async Task Completions_SeveralPromptsAndSamples_IndexChoicesPromptMajor()
    {
        var body = await PostJsonAsync("v1/completions", new { model = ModelId, prompt = TwoPrompts, n = 2, max_tokens = 3, temperature = 1, seed = 5, ignore_eos = true, logprobs = 2 });
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal(ChoiceIndexes, choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.Equal(12, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var logprobs = choices[0].GetProperty("logprobs");
        Assert.Equal(3, logprobs.GetProperty("tokens").GetArrayLength());
        Assert.Equal(3, logprobs.GetProperty("token_logprobs").GetArrayLength());
        Assert.Equal(3, logprobs.GetProperty("text_offset").GetArrayLength());
    }

    private int ExpectedPromptTokens(params (string Role, string Content)[] messages)
    {
        string rendered = KilnChatTemplate.ChatMl.Render([.. messages.Select(m => new KilnChatMessage(m.Role, m.Content))]);
        return Server.Model.Engine!.CountPromptTokens(new GenerationRequest { Prompt = rendered });
    }

    private async Task<JsonElement> PostJsonAsync(string path, object body)
    {
        using var response = await Server.Http.PostAsJsonAsync(path, body, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
