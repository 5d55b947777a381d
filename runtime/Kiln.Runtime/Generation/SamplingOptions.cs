namespace Kiln.Runtime.Generation;

/// <summary>How the next token is chosen. Temperature 0 is greedy; a seed makes sampling reproducible.</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 1f;

    public float TopP { get; init; } = 1f;

    public ulong? Seed { get; init; }

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be a finite number >= 0");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top_p must be in (0, 1]");
        }
    }
}
