using Kiln.Functions.OpenAi;
using Kiln.Runtime.Chat.Tools;
using Microsoft.AspNetCore.Http;

namespace Kiln.Functions.Api;

/// <summary>
/// Writes a call's answer as OpenAI does: one JSON body, or SSE chunks as tokens come. Each choice's text goes through
/// its own <see cref="ToolCallParser"/> when the request offered tools, so calls come out as <c>tool_calls</c> (whole, or
/// as <c>delta.tool_calls</c> chunks: id and name with empty arguments, then the arguments) and the choice finishes with
/// <c>tool_calls</c>. A stream ends each choice with a chunk of its own that carries only the finish reason.
/// </summary>
internal static class AnswerWriter
{
    public static async Task WriteAsync(
        HttpContext context, InferenceCall call, ResponseHeader header, GenerationOptions options, TokenTexts? texts, bool chat, Func<ToolCallParser>? newParser)
    {
        if (options.Stream)
        {
            await StreamAsync(context, call, header, options, texts, chat, newParser).ConfigureAwait(false);
            return;
        }

        var choices = Enumerable.Range(0, call.ChoiceCount).Select(i => new ChoiceResult(i)).ToArray();
        await foreach (var (index, e) in call.ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
        {
            var choice = choices[index];
            if (texts is not null && e.TokenId >= 0)
            {
                choice.LogProbs.Add(new LogProbEntry(e.TokenId, e.LogProb, e.TopLogProbs, choice.Text.Length));
            }

            choice.Text.Append(e.Text);
            choice.FinishReason = e.FinishReason ?? choice.FinishReason;
        }

        if (newParser is not null)
        {
            foreach (var choice in choices)
            {
                var parser = newParser();
                var events = new List<ToolCallEvent>();
                parser.Push(choice.Text.ToString(), events);
                parser.Finish(events);
                choice.SetParsed(events);
            }
        }

        await ApiJson.WriteAsync(context, StatusCodes.Status200OK, w =>
        {
            if (chat)
            {
                OpenAiResponses.WriteChatCompletion(w, header, choices, call.Usage, texts);
            }
            else
            {
                OpenAiResponses.WriteCompletion(w, header, choices, call.Usage, texts);
            }
        }).ConfigureAwait(false);
    }

    /// <summary>One SSE chunk per token as the engine produces it; a chat stream opens each choice with its role.</summary>
    private static async Task StreamAsync(
        HttpContext context, InferenceCall call, ResponseHeader header, GenerationOptions options, TokenTexts? texts, bool chat, Func<ToolCallParser>? newParser)
    {
        var aborted = context.RequestAborted;
        using var sse = new SseWriter(context.Response);
        await sse.StartAsync(aborted).ConfigureAwait(false);
        if (chat)
        {
            for (int i = 0; i < call.ChoiceCount; i++)
            {
                int index = i;
                await sse.WriteAsync(w => OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.Role), aborted).ConfigureAwait(false);
            }
        }

        var parsers = newParser is null ? null : Enumerable.Range(0, call.ChoiceCount).Select(_ => newParser()).ToArray();
        var events = new List<ToolCallEvent>();
        var offsets = new int[call.ChoiceCount];
        await foreach (var (index, e) in call.ReadAllAsync(aborted).ConfigureAwait(false))
        {
            LogProbEntry[]? logProbs = texts is not null && e.TokenId >= 0 ? [new LogProbEntry(e.TokenId, e.LogProb, e.TopLogProbs, offsets[index])] : null;
            offsets[index] += e.Text.Length;
            if (parsers is null)
            {
                if (e.Text.Length > 0 || logProbs is not null)
                {
                    await WriteTextAsync(sse, header, index, e.Text, logProbs, texts, chat, aborted).ConfigureAwait(false);
                }
            }
            else
            {
                // The text passes through the choice's parser: content as soon as it is decided, calls once whole.
                events.Clear();
                parsers[index].Push(e.Text, events);
                if (e.FinishReason is not null)
                {
                    parsers[index].Finish(events);
                }

                foreach (var piece in events)
                {
                    await WritePieceAsync(sse, header, index, piece, aborted).ConfigureAwait(false);
                }
            }

            if (e.FinishReason is { } finish)
            {
                string reason = OpenAiResponses.FinishReasonText(finish, parsers?[index].CallCount > 0);
                await sse.WriteAsync(
                    w =>
                    {
                        if (chat)
                        {
                            OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.Empty, finishReason: reason);
                        }
                        else
                        {
                            OpenAiResponses.WriteCompletionChunk(w, header, index, string.Empty, null, null, reason);
                        }
                    },
                    aborted).ConfigureAwait(false);
            }
        }

        if (options.IncludeUsage)
        {
            var usage = call.Usage;
            await sse.WriteAsync(w => OpenAiResponses.WriteUsageChunk(w, header, usage), aborted).ConfigureAwait(false);
        }

        await sse.DoneAsync(aborted).ConfigureAwait(false);
    }

    private static Task WriteTextAsync(
        SseWriter sse, ResponseHeader header, int index, string text, LogProbEntry[]? logProbs, TokenTexts? texts, bool chat, CancellationToken cancellationToken) =>
        sse.WriteAsync(
            w =>
            {
                if (chat)
                {
                    OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.Text(text), logProbs, texts);
                }
                else
                {
                    OpenAiResponses.WriteCompletionChunk(w, header, index, text, logProbs, texts, null);
                }
            },
            cancellationToken);

    /// <summary>Content as one chunk; a call as two, the way OpenAI streams them (id and name first, then arguments).</summary>
    private static async Task WritePieceAsync(SseWriter sse, ResponseHeader header, int index, ToolCallEvent piece, CancellationToken cancellationToken)
    {
        if (piece.Call is not { } call)
        {
            await sse.WriteAsync(w => OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.Text(piece.Text)), cancellationToken).ConfigureAwait(false);
            return;
        }

        await sse.WriteAsync(w => OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.CallOpened(piece.CallIndex, call)), cancellationToken).ConfigureAwait(false);
        await sse.WriteAsync(w => OpenAiResponses.WriteChatChunk(w, header, index, ChatDelta.CallArguments(piece.CallIndex, call.Arguments)), cancellationToken).ConfigureAwait(false);
    }
}
