namespace Kiln.Tests.Numerics;

/// <summary>Small numeric helpers shared by the tests here.</summary>
public static class Diff
{
    /// <summary>max |kiln[t * vocab + i] - reference[t][i]| over every position and token.</summary>
    public static double MaxAbs(ReadOnlySpan<float> kiln, double[][] reference)
    {
        double max = 0;
        int vocab = reference[0].Length;
        for (int t = 0; t < reference.Length; t++)
        {
            for (int i = 0; i < vocab; i++)
            {
                max = Math.Max(max, Math.Abs(kiln[(t * vocab) + i] - reference[t][i]));
            }
        }

        return max;
    }

    public static double MaxAbs(double[][] a, double[][] b) =>
        a.Zip(b).Max(rows => rows.First.Zip(rows.Second).Max(p => Math.Abs(p.First - p.Second)));

    public static double MaxAbs(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }

        return max;
    }
}
