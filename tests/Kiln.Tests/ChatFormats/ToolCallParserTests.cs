using Kiln.Runtime.Chat;
using Kiln.Runtime.Chat.Tools;

namespace Kiln.Tests.ChatFormats;

/// <summary>
/// The answers of the three tool-call syntaxes, written out by hand as their models write them (Qwen2.5's and
/// Hermes 3's templates, Meta's Llama 3.1 format, Mistral's), parsed whole and streamed in every split.
/// </summary>
public sealed class ToolCallParserTests
{
    private static readonly string[] Names = ["get_weather", "get_time"];

    [Fact]
    public void Hermes_OneCall_IsTheCallAndNoContent()
    {
        var (content, calls) = Parse(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
        Assert.Null(content);
        var call = Assert.Single(calls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("{\"city\": \"Paris\"}", call.Arguments);
        Assert.Equal("call_0", call.Id);
    }

    [Fact]
    public void Hermes_TextThenTwoCalls_KeepsTheTextAndBothCallsInOrder()
    {
        const string Answer = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n" +
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>";
        var (content, calls) = Parse(ToolCallFormat.Hermes, Answer);
        Assert.Equal("Let me check.\n\n", content);
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal(["call_0", "call_1"], calls.Select(c => c.Id));
        Assert.Equal("{\"zone\": \"CET\"}", calls[1].Arguments);
    }

    [Theory]
    [InlineData("<tool_call>\n{\"name\": \"send_mail\", \"arguments\": {}}\n</tool_call>")] // not an offered function
    [InlineData("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>")] // not JSON
    [InlineData("<tool_call>\n[1, 2]\n</tool_call>")]
    [InlineData("I would use <tool to do it")]
    [InlineData("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"ci")] // cut off by max_tokens
    public void Hermes_WhatIsNotACall_StaysContentVerbatim(string answer)
    {
        var (content, calls) = Parse(ToolCallFormat.Hermes, answer);
        Assert.Empty(calls);
        Assert.Equal(answer, content);
    }

    [Fact]
    public void Hermes_AnswerEndingInsideTheBlock_WithWholeJson_IsACall()
    {
        var (_, calls) = Parse(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}");
        Assert.Equal("get_time", Assert.Single(calls).Name);
    }

    [Theory]
    [InlineData("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}")]
    [InlineData("  <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}")]
    [InlineData("\n{\"name\": \"get_weather\", \"parameters\": \"{\\\"city\\\": \\\"Rome\\\"}\"}")] // arguments as a JSON string
    public void Llama3_BareJsonAnswer_IsACall(string answer)
    {
        var (content, calls) = Parse(ToolCallFormat.Llama3Json, answer);
        Assert.Null(content);
        var call = Assert.Single(calls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("{\"city\": \"Rome\"}", call.Arguments);
    }

    [Theory]
    [InlineData("The weather is fine.")]
    [InlineData("{\"answer\": 42}")] // JSON, but not a call
    [InlineData("Use {\"name\": \"get_weather\"} next time")] // a call in the middle of prose is not an answer-call
    public void Llama3_Prose_StaysContent(string answer)
    {
        var (content, calls) = Parse(ToolCallFormat.Llama3Json, answer);
        Assert.Empty(calls);
        Assert.Equal(answer, content);
    }

    [Fact]
    public void Mistral_ListOfCalls_IsEveryCall()
    {
        var (content, calls) = Parse(ToolCallFormat.Mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}, {\"name\": \"get_time\", \"arguments\": {}}]");
        Assert.Null(content);
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal("{}", calls[1].Arguments);
    }

    public static TheoryData<string, string> Streamed { get; } = new()
    {
        { "hermes", "Sure.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>" },
        { "hermes", "<tool_c is not <tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call> a call" },
        { "llama3", "{\"name\": \"get_time\", \"parameters\": {}}" },
        { "llama3", "<|python_ta is prose" },
        { "mistral", "ok [TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]" },
    };

    [Theory]
    [MemberData(nameof(Streamed))]
    public void Streaming_InAnyTwoOrThreePieces_GivesTheWholeParseAndNeverHalfAMarker(string syntax, string answer)
    {
        var format = syntax switch { "hermes" => ToolCallFormat.Hermes, "llama3" => ToolCallFormat.Llama3Json, _ => ToolCallFormat.Mistral };
        var whole = Parse(format, answer);
        for (int i = 0; i <= answer.Length; i++)
        {
            for (int j = i; j <= answer.Length; j += 3)
            {
                int id = 0;
                var parser = new ToolCallParser(format, Names, () => $"call_{id++}");
                var events = new List<ToolCallEvent>();
                var held = new List<string>();
                foreach (string piece in (string[])[answer[..i], answer[i..j], answer[j..]])
                {
                    int before = events.Count;
                    parser.Push(piece, events);
                    held.AddRange(events.Skip(before).Where(e => e.Call is null).Select(e => e.Text));
                }

                parser.Finish(events);
                string content = string.Concat(events.Where(e => e.Call is null).Select(e => e.Text));
                Assert.Equal(whole.Content ?? string.Empty, whole.Calls.Count > 0 ? content.Trim().Length == 0 ? string.Empty : content : content);
                Assert.Equal(whole.Calls, events.Where(e => e.Call is not null).Select(e => e.Call!));
                if (whole.Calls.Count > 0)
                {
                    // Content given out before the end never holds a piece of the marker that opened a call.
                    Assert.DoesNotContain(held, t => t.Contains('<', StringComparison.Ordinal) && format.Syntax == ToolCallSyntax.Hermes);
                }
            }
        }
    }

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct", ToolCallSyntax.Hermes)]
    [InlineData("Qwen-Qwen3-0.6B", ToolCallSyntax.Hermes)]
    [InlineData("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", ToolCallSyntax.Hermes)]
    [InlineData("meta-llama-Llama-3.2-3B-Instruct", ToolCallSyntax.Llama3Json)]
    [InlineData("mistralai-Mistral-Nemo-Instruct-2407", ToolCallSyntax.Mistral)]
    public void Detect_RecognisesEachFamilysTemplate_NeedsShared(string template, ToolCallSyntax expected)
    {
        string path = Path.Combine(Reference.SharedData.RequireFixturesDir(), "chat-templates", "templates", template + ".jinja");
        Assert.Equal(expected, ToolCallFormat.Detect(File.ReadAllText(path)).Syntax);
    }

    [Fact]
    public void Render_ThenParse_GivesTheCallBack()
    {
        foreach (var format in (ToolCallFormat[])[ToolCallFormat.Hermes, ToolCallFormat.Llama3Json, ToolCallFormat.Mistral])
        {
            var (_, calls) = Parse(format, format.Render("get_weather", "{\"city\": \"Lima\"}"));
            Assert.Equal(new ToolCall("call_0", "get_weather", "{\"city\": \"Lima\"}"), Assert.Single(calls));
        }
    }

    private static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(ToolCallFormat format, string answer)
    {
        int id = 0;
        return ToolCallParser.ParseWhole(format, Names, answer, () => $"call_{id++}");
    }
}
