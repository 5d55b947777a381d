using System.Globalization;
using System.Text;

namespace Kiln.Tests.Reference;

/// <summary>Where two row-major [positions, vocab] logit arrays differ most, for assertions with a useful message.</summary>
public sealed class LogitsComparison
{
    private LogitsComparison(double[] perPosition, int worstPosition, int worstToken, double maxAbs, double rms, double rmsDiff, int argMaxAgreements)
    {
        RmsDiff = rmsDiff;
        PerPositionMaxAbs = perPosition;
        WorstPosition = worstPosition;
        WorstToken = worstToken;
        MaxAbs = maxAbs;
        ReferenceRms = rms;
        ArgMaxAgreements = argMaxAgreements;
    }

    public IReadOnlyList<double> PerPositionMaxAbs { get; }

    public int WorstPosition { get; }

    public int WorstToken { get; }

    public double MaxAbs { get; }

    /// <summary>Root mean square of the differences.</summary>
    public double RmsDiff { get; }

    /// <summary>Root mean square of the reference logits: the scale the differences are to be read against.</summary>
    public double ReferenceRms { get; }

    /// <summary>Positions whose argmax is the same in both.</summary>
    public int ArgMaxAgreements { get; }

    public int Positions => PerPositionMaxAbs.Count;

    public static LogitsComparison Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> reference, int vocab)
    {
        if (actual.Length != reference.Length || vocab <= 0 || actual.Length % vocab != 0)
        {
            throw new ArgumentException($"logit arrays of {actual.Length} and {reference.Length} floats do not both hold whole rows of {vocab}");
        }

        int positions = actual.Length / vocab;
        var perPosition = new double[positions];
        int worstPosition = 0, worstToken = 0, agreements = 0;
        double maxAbs = 0, squares = 0, diffSquares = 0;
        for (int p = 0; p < positions; p++)
        {
            var a = actual.Slice(p * vocab, vocab);
            var r = reference.Slice(p * vocab, vocab);
            for (int t = 0; t < vocab; t++)
            {
                double d = Math.Abs((double)a[t] - r[t]);
                squares += (double)r[t] * r[t];
                diffSquares += d * d;
                if (!(d <= perPosition[p]))
                {
                    perPosition[p] = double.IsNaN(d) ? double.PositiveInfinity : d;
                }

                if (perPosition[p] > maxAbs)
                {
                    (maxAbs, worstPosition, worstToken) = (perPosition[p], p, t);
                }
            }

            agreements += LlamaCppReference.ArgMax(a) == LlamaCppReference.ArgMax(r) ? 1 : 0;
        }

        return new LogitsComparison(perPosition, worstPosition, worstToken, maxAbs, Math.Sqrt(squares / actual.Length), Math.Sqrt(diffSquares / actual.Length), agreements);
    }

    /// <summary>A readable summary: worst place, scale, and the per-position maxima (which show whether errors grow along positions).</summary>
    public string Describe()
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.Append(c, $"max |diff| {MaxAbs:G4} at position {WorstPosition}, token {WorstToken}; rms diff {RmsDiff:G4}; reference logit rms {ReferenceRms:G4}; ");
        text.Append(c, $"argmax agrees at {ArgMaxAgreements}/{Positions} positions; per-position max |diff|: ");
        text.AppendJoin(' ', PerPositionMaxAbs.Select(d => d.ToString("0.##E+0", c)));
        return text.ToString();
    }
}
