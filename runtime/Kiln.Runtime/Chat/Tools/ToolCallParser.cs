using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kiln.Runtime.Chat.Tools;

/// <summary>A piece of a parsed answer: text for the caller, or one complete tool call (<see cref="Call"/> set).</summary>
public readonly record struct ToolCallEvent(string Text, int CallIndex, ToolCall? Call)
{
    public static ToolCallEvent Content(string text) => new(text, -1, null);
}

/// <summary>
/// Splits a model's answer, as it streams, into content and tool calls in its family's syntax
/// (<see cref="ToolCallFormat"/>). Text that could still turn out to open a call is held back until it is decided,
/// so a caller never sees half a marker; a call is given out once its JSON is complete. Whatever does not parse as a
/// call to an offered function stays content: nothing the model wrote is lost. One parser per choice; not thread-safe.
/// </summary>
public sealed class ToolCallParser
{
    private readonly ToolCallFormat _format;
    private readonly HashSet<string> _names;
    private readonly Func<string> _newId;
    private readonly StringBuilder _pending = new();
    private bool _inCall;
    private bool _emittedContent;
    private int _calls;

    /// <param name="format">The family's syntax.</param>
    /// <param name="toolNames">The offered functions: a call to any other name stays content.</param>
    /// <param name="newId">Makes call ids (OpenAI's shape, <c>call_</c> and 24 characters, by default).</param>
    public ToolCallParser(ToolCallFormat format, IEnumerable<string> toolNames, Func<string>? newId = null)
    {
        ArgumentNullException.ThrowIfNull(format);
        _format = format;
        _names = [.. toolNames];
        _newId = newId ?? NewCallId;
    }

    /// <summary>How many calls have been given out.</summary>
    public int CallCount => _calls;

    /// <summary>Takes the next piece of the answer and appends what is now decided to <paramref name="events"/>.</summary>
    public void Push(string text, List<ToolCallEvent> events)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(events);
        _pending.Append(text);
        while (Step(events, final: false))
        {
        }
    }

    /// <summary>The answer ended: gives out everything held back (a call whose JSON is complete, else content).</summary>
    public void Finish(List<ToolCallEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        while (Step(events, final: true))
        {
        }

        if (_pending.Length > 0)
        {
            Emit(events, _pending.ToString());
            _pending.Clear();
        }
    }

    /// <summary>Parses a whole answer: its content (null when it was only calls and white space) and its calls.</summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) ParseWhole(ToolCallFormat format, IEnumerable<string> toolNames, string text, Func<string>? newId = null)
    {
        var parser = new ToolCallParser(format, toolNames, newId);
        var events = new List<ToolCallEvent>();
        parser.Push(text, events);
        parser.Finish(events);
        var content = new StringBuilder();
        var calls = new List<ToolCall>();
        foreach (var e in events)
        {
            if (e.Call is { } call)
            {
                calls.Add(call);
            }
            else
            {
                content.Append(e.Text);
            }
        }

        string body = content.ToString();
        return (calls.Count > 0 && string.IsNullOrWhiteSpace(body) ? null : body, calls);
    }

    /// <summary>One decision on the pending text; true when it made progress and may make more.</summary>
    private bool Step(List<ToolCallEvent> events, bool final)
    {
        string pending = _pending.ToString();
        if (_inCall)
        {
            return _format.CloseMarker is { } close ? CloseBlock(pending, close, events, final) : final && CloseTail(pending, events);
        }

        // Llama 3.1 answers a call with bare JSON: an answer that opens with '{' is held whole and decided at its end.
        if (_format.Syntax == ToolCallSyntax.Llama3Json && !_emittedContent && _calls == 0)
        {
            string start = pending.TrimStart();
            if (start.StartsWith('{'))
            {
                _pending.Clear().Append(start);
                _inCall = true;
                return true;
            }

            if (start.Length == 0 || (_format.OpenMarker.StartsWith(start, StringComparison.Ordinal) && !final))
            {
                return false; // white space so far, or the start of <|python_tag|>
            }
        }

        string open = _format.OpenMarker;
        int at = pending.IndexOf(open, StringComparison.Ordinal);
        if (at >= 0)
        {
            Emit(events, pending[..at]);
            _pending.Clear().Append(pending, at + open.Length, pending.Length - at - open.Length);
            _inCall = true;
            return true;
        }

        // Keep back the longest tail that could be the start of the marker; the rest is content.
        int keep = final ? 0 : HeldTail(pending, open);
        Emit(events, pending[..^keep]);
        _pending.Clear().Append(pending, pending.Length - keep, keep);
        return false;
    }

    private bool CloseBlock(string pending, string close, List<ToolCallEvent> events, bool final)
    {
        int end = pending.IndexOf(close, StringComparison.Ordinal);
        if (end < 0)
        {
            return final && CloseTail(pending, events); // the answer ended inside the block: take it if its JSON is whole
        }

        string body = pending[..end];
        _pending.Clear().Append(pending, end + close.Length, pending.Length - end - close.Length);
        _inCall = false;
        if (!TryEmitCalls(body, events))
        {
            Emit(events, _format.OpenMarker + body + close);
        }

        return true;
    }

    /// <summary>The rest of the answer is one call's (or, for Mistral, a list of calls') JSON.</summary>
    private bool CloseTail(string pending, List<ToolCallEvent> events)
    {
        _pending.Clear();
        _inCall = false;
        if (!TryEmitCalls(pending, events))
        {
            string marker = _format.Syntax == ToolCallSyntax.Llama3Json && pending.TrimStart().StartsWith('{') ? string.Empty : _format.OpenMarker;
            Emit(events, marker + pending);
        }

        return false;
    }

    private bool TryEmitCalls(string json, List<ToolCallEvent> events)
    {
        var found = new List<ToolCall>();
        try
        {
            using var document = JsonDocument.Parse(json.Trim());
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in root.EnumerateArray())
                {
                    if (ReadCall(item) is not { } call)
                    {
                        return false;
                    }

                    found.Add(call);
                }
            }
            else if (ReadCall(root) is { } call)
            {
                found.Add(call);
            }
        }
        catch (JsonException)
        {
            return false;
        }

        if (found.Count == 0)
        {
            return false;
        }

        foreach (var call in found)
        {
            events.Add(new ToolCallEvent(string.Empty, _calls++, call));
        }

        return true;
    }

    /// <summary><c>{"name": ..., "arguments"|"parameters": {...} or a JSON string}</c> naming an offered function.</summary>
    private ToolCall? ReadCall(JsonElement item)
    {
        if (item.ValueKind != JsonValueKind.Object
            || !item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || !_names.Contains(name.GetString()!))
        {
            return null;
        }

        string arguments = "{}";
        if (item.TryGetProperty(_format.ArgumentsKey, out var args) || item.TryGetProperty("arguments", out args) || item.TryGetProperty("parameters", out args))
        {
            arguments = args.ValueKind == JsonValueKind.String ? args.GetString()! : args.GetRawText();
        }

        return new ToolCall(_newId(), name.GetString()!, arguments);
    }

    private void Emit(List<ToolCallEvent> events, string text)
    {
        if (text.Length > 0)
        {
            events.Add(ToolCallEvent.Content(text));
            _emittedContent |= !string.IsNullOrWhiteSpace(text);
        }
    }

    /// <summary>The length of the longest tail of <paramref name="text"/> that begins <paramref name="marker"/>.</summary>
    private static int HeldTail(string text, string marker)
    {
        for (int n = Math.Min(marker.Length - 1, text.Length); n > 0; n--)
        {
            if (text.AsSpan(text.Length - n).SequenceEqual(marker.AsSpan(0, n)))
            {
                return n;
            }
        }

        return 0;
    }

    /// <summary>OpenAI's id shape: <c>call_</c> and 24 letters and digits.</summary>
    public static string NewCallId()
    {
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        return "call_" + RandomNumberGenerator.GetString(Alphabet, 24);
    }
}
