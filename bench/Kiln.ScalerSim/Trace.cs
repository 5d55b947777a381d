using System.Globalization;

namespace Kiln.ScalerSim;

/// <summary>One request of a trace: arrival (seconds from the first), prompt and output tokens.</summary>
public readonly record struct TraceRequest(double Arrival, int Prompt, int Output)
{
    public int Tokens => Prompt + Output;
}

/// <summary>Reads the Azure LLM inference traces (TIMESTAMP, ContextTokens, GeneratedTokens).</summary>
public static class Trace
{
    public static List<TraceRequest> LoadAzure(string path)
    {
        var rows = new List<TraceRequest>();
        DateTime? first = null;
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var f = line.Split(',');
            if (f.Length < 3)
            {
                continue;
            }

            var t = DateTime.Parse(f[0], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
            first ??= t;
            rows.Add(new TraceRequest((t - first.Value).TotalSeconds, int.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture)));
        }

        rows.Sort((a, b) => a.Arrival.CompareTo(b.Arrival));
        return rows;
    }
}
