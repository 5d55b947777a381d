using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// A test matrix uploaded in one of the device formats. Upload rounds the given values in place to what the device
/// holds (bf16; f16; Q8 with a scale of max|w|/127 per 32 values), so float64 references use the very same weights.
/// </summary>
internal sealed class CompactWeights : IDisposable
{
    private CompactWeights(WeightFormat format, DeviceBuffer data, DeviceBuffer? scales)
    {
        Format = format;
        Data = data;
        Scales = scales;
    }

    public WeightFormat Format { get; }

    public DeviceBuffer Data { get; }

    public DeviceBuffer? Scales { get; }

    public ulong ScalesPointer => Scales?.Pointer ?? 0;

    public static CompactWeights Upload(WeightFormat format, float[] values, int columns)
    {
        switch (format)
        {
            case WeightFormat.Bf16:
                return new CompactWeights(format, TestDevice.Bf16(values), null);
            case WeightFormat.F16:
                {
                    var bits = new ushort[values.Length];
                    for (int i = 0; i < values.Length; i++)
                    {
                        var half = (Half)values[i];
                        bits[i] = BitConverter.HalfToUInt16Bits(half);
                        values[i] = (float)half;
                    }

                    var data = new DeviceBuffer((long)bits.Length * sizeof(ushort));
                    data.Upload<ushort>(bits, TestDevice.Stream);
                    return new CompactWeights(format, data, null);
                }

            default:
                {
                    Assert.Equal(0, columns % 32);
                    var quantized = new sbyte[values.Length];
                    var scales = new float[values.Length / 32];
                    for (int b = 0; b < scales.Length; b++)
                    {
                        var block = values.AsSpan(b * 32, 32);
                        float max = 0;
                        foreach (float v in block)
                        {
                            max = Math.Max(max, Math.Abs(v));
                        }

                        scales[b] = max / 127f;
                        for (int i = 0; i < 32; i++)
                        {
                            sbyte q = scales[b] == 0 ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(block[i] / scales[b]), -127, 127);
                            quantized[(b * 32) + i] = q;
                            block[i] = q * scales[b]; // as the kernels compute it: float(q) * scale
                        }
                    }

                    var data = new DeviceBuffer(quantized.Length);
                    data.Upload<sbyte>(quantized, TestDevice.Stream);
                    return new CompactWeights(format, data, TestDevice.Floats(scales));
                }
        }
    }

    public void Dispose()
    {
        Data.Dispose();
        Scales?.Dispose();
    }
}
