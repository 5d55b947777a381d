namespace Kiln.Runtime.Models;

/// <summary>
/// SplitMix64: a tiny generator whose sequence is fixed by its seed on every platform and .NET version, so generated
/// models (the demo model, test models) have the same weights everywhere.
/// </summary>
public struct DeterministicRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 24 bits of precision.</summary>
    public float NextSingle() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Uniform in [-scale, scale).</summary>
    public float NextSymmetric(float scale) => ((2 * NextSingle()) - 1) * scale;

    public void Fill(Span<float> values, float scale, float offset = 0)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = offset + NextSymmetric(scale);
        }
    }
}
