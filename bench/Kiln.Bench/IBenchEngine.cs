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
