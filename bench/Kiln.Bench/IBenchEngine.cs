namespace Kiln.Bench;

/// <summary>One inference engine under measurement: one sequence, greedy, starting from an empty cache at each prefill.</summary>
internal interface IBenchEngine : IDisposable
{
    string Name { get; }

    /// <summary>Runs the prompt from position 0 as one step; returns the greedy next token.</summary>
    int Prefill(ReadOnlySpan<int> prompt);

    /// <summary>Runs one token at <paramref name="position"/>; returns the greedy next token.</summary>
    int Decode(int token, int position);
}

internal static class Greedy
{
    /// <summary>Index of the largest value; the lowest index wins a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
