using System.Diagnostics;
using System.Text;

namespace Kiln.StartupBench;

/// <summary>What the app printed, and when it logged that the model's load began and ended (ModelHost's lines).</summary>
internal sealed class AppLog(Stopwatch clock)
{
    private readonly StringBuilder _text = new();

    public double? LoadBegun { get; private set; }

    public double? LoadDone { get; private set; }

    public string Text
    {
        get
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }
    }

    public void Line(string? line)
    {
        if (line is null)
        {
            return;
        }

        double now = clock.Elapsed.TotalSeconds;
        lock (_text)
        {
            _text.AppendLine(line);
            if (line.Contains("Loading model ", StringComparison.Ordinal))
            {
                LoadBegun ??= now;
            }
            else if (line.Contains(" loaded in ", StringComparison.Ordinal))
            {
                LoadDone ??= now;
            }
        }
    }
}
