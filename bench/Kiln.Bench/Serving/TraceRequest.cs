using System.Globalization;

namespace Kiln.Bench.Serving;

/// <summary>One row of an Azure LLM inference trace, already scaled: when it arrives and how many tokens in and out.</summary>
internal sealed record TraceRequest(TimeSpan Arrival, int PromptTokens, int OutputTokens)
{
    /// <summary>Reads TIMESTAMP,ContextTokens,GeneratedTokens rows and scales them to fit the machine.</summary>
    public static List<TraceRequest> Load(string path, ServingBenchOptions o)
    {
        var rows = new List<TraceRequest>();
        DateTime? first = null;
        foreach (string line in File.ReadLines(path).Skip(1))
        {
            if (rows.Count == o.Requests)
            {
                break;
            }

            var parts = line.Split(',');
            if (parts.Length < 3)
            {
                continue;
            }

            var time = DateTime.Parse(parts[0], CultureInfo.InvariantCulture);
            first ??= time;
            int context = int.Parse(parts[1], CultureInfo.InvariantCulture);
            int generated = int.Parse(parts[2], CultureInfo.InvariantCulture);
            rows.Add(new TraceRequest(
                (time - first.Value) * o.TimeScale,
                Math.Clamp((int)Math.Round(context * o.ContextScale), 1, o.MaxContext),
                Math.Clamp((int)Math.Round(generated * o.OutputScale), 1, o.MaxOutput)));
        }

        return rows;
    }
}
