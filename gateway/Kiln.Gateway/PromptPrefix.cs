using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Kiln.Gateway;

/// <summary>
/// A request's prompt as a chain of block hashes: the text (chat: each message's role and content in order;
/// completions: the prompt) cut into blocks of a fixed number of characters, block i's hash covering blocks 0..i.
/// Two prompts share hash i exactly when they share their first i+1 blocks, which is what a pod's prefix cache reuses.
/// Only whole blocks count: a short tail is cheap to recompute anywhere.
/// </summary>
public static class PromptPrefix
{
    /// <summary>At most this many blocks are hashed (2048 chars each by default: about 256k tokens), bounding the work.</summary>
    public const int MaxBlocks = 128;

    public static IReadOnlyList<ulong> Blocks(JsonElement request, int blockChars)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockChars);
        var text = Text(request);
        var count = Math.Min(MaxBlocks, text.Length / blockChars);
        var hashes = new ulong[count];
        ulong previous = 0;
        for (var i = 0; i < count; i++)
        {
            var block = text.AsSpan(i * blockChars, blockChars);
            previous = XxHash64.HashToUInt64(MemoryMarshal.AsBytes(block), unchecked((long)previous));
            hashes[i] = previous;
        }

        return hashes;
    }

    /// <summary>The prompt text the blocks are cut from; empty when the body is neither chat nor completions.</summary>
    public static string Text(JsonElement request)
    {
        if (request.ValueKind != JsonValueKind.Object)
        {
            return "";
        }

        var sb = new StringBuilder();
        if (request.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in messages.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                // The role separates messages, so "a"+"bc" and "ab"+"c" do not collide.
                sb.Append('<').Append(m.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String ? role.GetString() : "").Append('>');
                if (m.TryGetProperty("content", out var content))
                {
                    AppendText(sb, content);
                }

                sb.Append('\n');
            }
        }
        else if (request.TryGetProperty("prompt", out var prompt))
        {
            AppendText(sb, prompt);
        }

        return sb.ToString();
    }

    // A string, an array of strings or text parts, or token ids (kept as digits so that they hash too).
    private static void AppendText(StringBuilder sb, JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                sb.Append(e.GetString());
                break;
            case JsonValueKind.Number:
                sb.Append(e.GetRawText()).Append(',');
                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object)
                    {
                        if (item.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
                        {
                            sb.Append(t.GetString());
                        }
                    }
                    else
                    {
                        AppendText(sb, item);
                    }
                }

                break;
        }
    }
}
