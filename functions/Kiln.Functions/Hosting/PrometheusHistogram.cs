using System.Globalization;
using System.Text;

namespace Kiln.Functions.Hosting;

/// <summary>
/// A Prometheus histogram (cumulative buckets, sum, count) observed from any thread without a lock and written in the
/// text exposition format, for series whose names prometheus-net refuses: it rejects the colons of vLLM's names
/// (<c>vllm:time_to_first_token_seconds</c>), though the Prometheus data model allows them (<c>[a-zA-Z_:][a-zA-Z0-9_:]*</c>).
/// </summary>
public sealed class PrometheusHistogram(string name, string help, IReadOnlyList<double> upperBounds)
{
    private readonly double[] _bounds = [.. upperBounds];
    private readonly long[] _counts = new long[upperBounds.Count + 1]; // the last one is +Inf
    private long _sumBits;

    public string Name { get; } = name;

    public void Observe(double value)
    {
        int bucket = 0;
        while (bucket < _bounds.Length && value > _bounds[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _counts[bucket]);
        long bits, next;
        do
        {
            bits = Interlocked.Read(ref _sumBits);
            next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(bits) + value);
        }
        while (Interlocked.CompareExchange(ref _sumBits, next, bits) != bits);
    }

    /// <summary>HELP, TYPE, the cumulative buckets, sum and count, each with <paramref name="labels"/> (already formatted: <c>model_name="x"</c>).</summary>
    public void WriteTo(StringBuilder text, string labels)
    {
        ArgumentNullException.ThrowIfNull(text);
        PrometheusText.Header(text, Name, help, "histogram");
        long cumulative = 0;
        for (int i = 0; i <= _bounds.Length; i++)
        {
            cumulative += Interlocked.Read(ref _counts[i]);
            string le = i < _bounds.Length ? PrometheusText.Number(_bounds[i]) : "+Inf";
            text.Append(Name).Append("_bucket{").Append(labels).Append(",le=\"").Append(le).Append("\"} ").Append(cumulative).Append('\n');
        }

        text.Append(Name).Append("_sum{").Append(labels).Append("} ").Append(PrometheusText.Number(BitConverter.Int64BitsToDouble(Interlocked.Read(ref _sumBits)))).Append('\n');
        text.Append(Name).Append("_count{").Append(labels).Append("} ").Append(cumulative).Append('\n');
    }
}

/// <summary>The small pieces of Prometheus' text format (version 0.0.4) the vLLM series need.</summary>
public static class PrometheusText
{
    public static void Header(StringBuilder text, string name, string help, string type)
    {
        ArgumentNullException.ThrowIfNull(text);
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    /// <summary>One sample of a gauge or counter, with its HELP and TYPE lines.</summary>
    public static void Sample(StringBuilder text, string name, string help, string type, string labels, double value)
    {
        Header(text, name, help, type);
        text.Append(name).Append('{').Append(labels).Append("} ").Append(Number(value)).Append('\n');
    }

    /// <summary><c>name="value"</c> with the format's escapes (backslash, quote, newline).</summary>
    public static string Label(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return $"{name}=\"{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)}\"";
    }

    public static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN" : value.ToString("R", CultureInfo.InvariantCulture);
}
