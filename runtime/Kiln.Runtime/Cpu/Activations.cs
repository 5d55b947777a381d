using System.Numerics.Tensors;

namespace Kiln.Runtime.Cpu;

/// <summary>The element-wise steps of a Llama layer.</summary>
internal static class Activations
{
    /// <summary>y = x / sqrt(mean(x^2) + eps) * weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, double eps, Span<float> y)
    {
        float sumSquares = TensorPrimitives.SumOfSquares(x);
        float scale = (float)(1.0 / Math.Sqrt((sumSquares / x.Length) + eps));
        TensorPrimitives.Multiply(x, scale, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>gate = silu(gate) * up = gate * sigmoid(gate) * up, in place (up is overwritten).</summary>
    public static void SwiGlu(Span<float> gate, Span<float> up)
    {
        TensorPrimitives.Multiply(up, gate, up);
        TensorPrimitives.Sigmoid(gate, gate);
        TensorPrimitives.Multiply(gate, up, gate);
    }
}
