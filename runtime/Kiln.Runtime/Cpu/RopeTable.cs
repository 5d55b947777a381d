using Kiln.Runtime.Models;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// RoPE inverse frequencies in float64 (with llama3 scaling or GGUF's rope_freqs divisors applied), and the rotation
/// of query and key heads in either pairing layout.
/// </summary>
public sealed class RopeTable
{
    public RopeTable(ModelConfig config, float[]? ropeFactors)
    {
        Layout = config.RopeLayout;
        HeadDim = config.HeadDim;
        InverseFrequencies = Compute(config, ropeFactors);
    }

    public RopeLayout Layout { get; }

    public int HeadDim { get; }

    public double[] InverseFrequencies { get; }

    public static double[] Compute(ModelConfig config, float[]? ropeFactors)
    {
        int half = config.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
        {
            inv[i] = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.HeadDim);
        }

        if (config.RopeScaling is { } s)
        {
            // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
            double lowWavelength = s.OriginalMaxPositions / s.LowFrequencyFactor;
            double highWavelength = s.OriginalMaxPositions / s.HighFrequencyFactor;
            for (int i = 0; i < half; i++)
            {
                double wavelength = 2 * Math.PI / inv[i];
                if (wavelength > lowWavelength)
                {
                    inv[i] /= s.Factor;
                }
                else if (wavelength >= highWavelength)
                {
                    double smooth = ((s.OriginalMaxPositions / wavelength) - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                    inv[i] = ((1 - smooth) * inv[i] / s.Factor) + (smooth * inv[i]);
                }
            }
        }

        if (ropeFactors is not null)
        {
            for (int i = 0; i < half; i++)
            {
                inv[i] /= ropeFactors[i];
            }
        }

        return inv;
    }

    /// <summary>Fills cos/sin [HeadDim/2] for one position.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < InverseFrequencies.Length; i++)
        {
            double angle = position * InverseFrequencies[i];
            cos[i] = (float)Math.Cos(angle);
            sin[i] = (float)Math.Sin(angle);
        }
    }

    /// <summary>Rotates every head of <paramref name="heads"/> (a token's [headCount x HeadDim] vector) in place.</summary>
    public void Rotate(Span<float> heads, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = HeadDim / 2;
        for (int h = 0; h < heads.Length; h += HeadDim)
        {
            var head = heads.Slice(h, HeadDim);
            for (int i = 0; i < half; i++)
            {
                int a = Layout == RopeLayout.HalfSplit ? i : 2 * i;
                int b = Layout == RopeLayout.HalfSplit ? i + half : (2 * i) + 1;
                float x0 = head[a];
                float x1 = head[b];
                head[a] = (x0 * cos[i]) - (x1 * sin[i]);
                head[b] = (x0 * sin[i]) + (x1 * cos[i]);
            }
        }
    }
}
