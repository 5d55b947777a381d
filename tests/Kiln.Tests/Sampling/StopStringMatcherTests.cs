using System.Text;
using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Sampling;

public class StopStringMatcherTests
{
    /// <summary>Feeds the pieces; returns what each released and the matcher.</summary>
    private static (string[] Released, StopStringMatcher Matcher) Feed(string[] stops, params string[] pieces)
    {
        var matcher = new StopStringMatcher(stops);
        return ([.. pieces.Select(piece => matcher.Append(piece).Text)], matcher);
    }

    private static void AssertReleased(string[] released, params string[] expected) => Assert.Equal(expected, released);

    [Fact]
    public void StopSplitAcrossPieces_IsCaughtAndNotEmitted()
    {
        var (released, matcher) = Feed(["###"], "Hello #", "#", "# world", "more");
        AssertReleased(released, "Hello ", "", "", "");
        Assert.True(matcher.Stopped);
        Assert.Equal("###", matcher.StopString);
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void OverlappingPrefix_ababc_StopsBeforeTheLastAbc()
    {
        var (released, matcher) = Feed(["abc"], "a", "b", "a", "b", "c", "d");
        AssertReleased(released, "", "", "ab", "", "", "");
        Assert.Equal("ab", string.Concat(released));
        Assert.True(matcher.Stopped);

        (released, _) = Feed(["abc"], "ab", "abc");
        AssertReleased(released, "", "ab");
    }

    [Fact]
    public void MultipleStops_TheFirstToCompleteWins()
    {
        string text = "line one\nline two\n\nEND";
        var (released, matcher) = Feed(["END", "\n\n"], [.. text.Select(c => c.ToString())]);
        Assert.Equal("line one\nline two", string.Concat(released));
        Assert.Equal("\n\n", matcher.StopString);

        // "bcd" completes before "abcde", whether the text comes whole or by characters.
        Assert.Equal("xa", new StopStringMatcher(["abcde", "bcd"]).Append("xabcdef").Text);
        (released, matcher) = Feed(["abcde", "bcd"], "x", "a", "b", "c", "d", "e");
        Assert.Equal("xa", string.Concat(released));
        Assert.Equal("bcd", matcher.StopString);
    }

    [Fact]
    public void HeldText_IsReleasedOnceItCannotBeAStop_AndByFlushAtTheEnd()
    {
        var (released, matcher) = Feed(["abc"], "xa", "b");
        AssertReleased(released, "x", "");
        Assert.Equal("ab", matcher.Held);
        Assert.Equal("ab", matcher.Flush());
        Assert.False(matcher.Stopped);

        (released, matcher) = Feed(["abc"], "ab", "x", "a", "bd");
        AssertReleased(released, "", "abx", "", "abd");
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void NoStops_PassesEverythingThrough()
    {
        var (released, matcher) = Feed([], "a", "bc", "");
        AssertReleased(released, "a", "bc", "");
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void EmptyStopString_IsRejected() =>
        Assert.Throws<ArgumentException>(() => new StopStringMatcher(["ok", ""]));

    [Fact]
    public void AnySplit_GivesWhatTheWholeTextGives()
    {
        string[] stops = ["abc", "bca", "cc", "a b"];
        var random = new Random(2024);
        int stopped = 0;
        for (int trial = 0; trial < 500; trial++)
        {
            string text = new([.. Enumerable.Range(0, 20).Select(_ => "ab c"[random.Next(4)])]);
            var (expected, expectedStop) = Reference(text, stops);
            stopped += expectedStop is null ? 0 : 1;

            var matcher = new StopStringMatcher(stops);
            var output = new StringBuilder();
            for (int at = 0; at < text.Length && !matcher.Stopped;)
            {
                int length = Math.Min(random.Next(1, 5), text.Length - at);
                output.Append(matcher.Append(text.Substring(at, length)).Text);
                at += length;
            }

            output.Append(matcher.Flush());
            Assert.Equal(expected, output.ToString());
            Assert.Equal(expectedStop, matcher.StopString);
        }

        Assert.InRange(stopped, 100, 499); // both outcomes were exercised
    }

    /// <summary>Brute force: the first position where some stop string ends, and the earliest-starting one ending there.</summary>
    private static (string Text, string? Stop) Reference(string text, string[] stops)
    {
        for (int end = 1; end <= text.Length; end++)
        {
            var ending = stops.Where(s => text[..end].EndsWith(s, StringComparison.Ordinal)).OrderByDescending(s => s.Length).FirstOrDefault();
            if (ending is not null)
            {
                return (text[..(end - ending.Length)], ending);
            }
        }

        return (text, null);
    }
}
