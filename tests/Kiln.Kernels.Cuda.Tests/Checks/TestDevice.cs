using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The CUDA device the checks share: one device, one stream and the kernels compiled for HEAD_DIM 64, opened on
/// first use. It is a real NVIDIA GPU (Kiln.Kernels.Cuda.Tests) or, in Kiln.Kernels.Cuda.EmulatorTests, the CPU
/// emulator of kernels/emulator, which that project builds with g++ and selects before any CUDA call.
/// <see cref="Require"/> skips a check, saying why, where the device is missing.
/// </summary>
internal static unsafe class TestDevice
{
    public const int HeadDim = 64;
    private static readonly Lazy<(CudaDevice Device, nint Stream, KernelModule Kernels)> Shared = new(Open);
    public static readonly string CacheDirectory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-cache");
    private static Lazy<string?>? s_emulator;

    /// <summary>
    /// True when the checks run on the CPU emulator (this project chose it, or KILN_CUDA_LIB points at it): slow, so the
    /// statistical checks draw fewer samples.
    /// </summary>
    public static bool IsEmulated => s_emulator is not null || Device.Name.StartsWith("Kiln CUDA emulator", StringComparison.Ordinal);

    /// <summary>Runs every check on the emulator; <paramref name="build"/> builds it and returns why it cannot, or null.</summary>
    public static void UseEmulator(Func<string?> build) => s_emulator = new Lazy<string?>(build);

    public static string? MissingReason => s_emulator is { } emulator
        ? emulator.Value is { } failure ? $"needs g++ to build the CUDA emulator: {failure}" : CudaDevice.UnavailableReason()
        : CudaDevice.UnavailableReason() is { } reason ? $"needs an NVIDIA GPU: {reason}" : null;

    public static CudaDevice Device => Shared.Value.Device;

    public static nint Stream => Shared.Value.Stream;

    public static KernelModule Kernels => Shared.Value.Kernels;

    public static void Require()
    {
        if (MissingReason is { } reason)
        {
            if (s_emulator is not null)
            {
                Prerequisite.Missing(reason); // the emulator is built from source: CI must manage that
            }

            Assert.Skip(reason);
        }

        Device.MakeCurrent();
    }

    /// <summary>Skips unless the machine has at least <paramref name="count"/> devices (the emulator is given two).</summary>
    public static void RequireDevices(int count)
    {
        Require();
        if (CudaDevice.Count < count)
        {
            Assert.Skip($"needs {count} GPUs; this machine has {CudaDevice.Count}");
        }
    }

    public static DeviceBuffer Floats(ReadOnlySpan<float> values)
    {
        var buffer = new DeviceBuffer((long)values.Length * sizeof(float));
        buffer.Upload(values, Stream);
        return buffer;
    }

    public static DeviceBuffer Ints(ReadOnlySpan<int> values)
    {
        var buffer = new DeviceBuffer((long)values.Length * sizeof(int));
        buffer.Upload(values, Stream);
        return buffer;
    }

    /// <summary>Uploads values as bf16 and rounds <paramref name="values"/> in place to what the device holds.</summary>
    public static DeviceBuffer Bf16(float[] values)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = GgufWriter.ToBFloat16(values[i]);
            values[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
        }

        var buffer = new DeviceBuffer((long)values.Length * sizeof(ushort));
        buffer.Upload<ushort>(bits, Stream);
        return buffer;
    }

    /// <summary>A buffer of <paramref name="bytes"/> filled with 0xFF: NaN as float32 and as bf16, so an element a kernel skips shows.</summary>
    public static DeviceBuffer Poisoned(long bytes)
    {
        var buffer = new DeviceBuffer(bytes);
        buffer.Fill(0xFF, Stream);
        return buffer;
    }

    public static float[] ReadFloats(DeviceBuffer buffer, int count)
    {
        var values = new float[count];
        buffer.Download<float>(values, Stream);
        return values;
    }

    public static float[] ReadBf16(DeviceBuffer buffer, int count)
    {
        var bits = new ushort[count];
        buffer.Download<ushort>(bits, Stream);
        var values = new float[count];
        Runtime.Tensors.WeightMatrix.WidenBFloat16(bits, values);
        return values;
    }

    public static void Synchronize() => Driver.Check(Driver.cuStreamSynchronize(Stream));

    public static float[] Random(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = ((float)random.NextDouble() * 2 - 1) * scale;
        }

        return values;
    }

    /// <summary>
    /// A random Llama with bf16 weights (or <paramref name="weights"/>: F16 and Q8_0 stay so on the device), so the CPU
    /// reference and the GPU multiply the very same numbers.
    /// </summary>
    public static LoadedModel RandomModel(RandomLlamaOptions options, GgmlType weights = GgmlType.BF16)
    {
        string directory = Path.Combine(Path.GetTempPath(), "kiln-cuda-test-models");
        string path = RandomLlamaGguf.WriteCached(directory, options with { WeightType = weights });
        return ModelLoader.Load(path);
    }

    /// <summary>||actual - expected|| / ||expected|| (L2), after checking that no element is still the NaN poison.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0;
        double norm = 1e-30;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"element {i} of {actual.Length} was never written (still the NaN poison) or is NaN");
            difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }

        return Math.Sqrt(difference / norm);
    }

    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        var widened = new double[expected.Length];
        for (int i = 0; i < widened.Length; i++)
        {
            widened[i] = expected[i];
        }

        return RelativeError(actual, widened);
    }

    private static (CudaDevice, nint, KernelModule) Open()
    {
        var device = CudaDevice.Open();
        Driver.Check(Driver.cuStreamCreate(out nint stream, Driver.StreamNonBlocking));
        return (device, stream, new KernelModule(device, HeadDim, CacheDirectory));
    }
}
