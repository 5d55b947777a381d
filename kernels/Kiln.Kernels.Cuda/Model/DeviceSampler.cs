using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Sampling;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// Draws a step's tokens with sampling.cu's sample_rows: each row's temperature, top-k, top-p and seed are staged in
/// pinned memory, copied in one transfer, and read by one block per row. Only the ids leave the device.
/// </summary>
internal sealed unsafe class DeviceSampler : IDisposable
{
    private readonly int _capacity;
    private readonly PinnedBuffer<ulong> _host; // seeds [capacity], then temperatures, top-k and top-p [capacity each] as 32-bit words
    private readonly DeviceBuffer _device;

    public DeviceSampler(int capacity)
    {
        _capacity = capacity;
        int words = capacity + ((3 * capacity) + 1) / 2;
        _host = new PinnedBuffer<ulong>(words);
        _device = new DeviceBuffer((long)words * sizeof(ulong));
    }

    /// <summary>
    /// Writes one id per row of <paramref name="logits"/> ([rows x vocab] float32) to <paramref name="output"/>; the
    /// launch is timed into <paramref name="profiler"/> when one is given (the benchmark's --profile).
    /// </summary>
    public void Sample(KernelModule kernels, ReadOnlySpan<DeviceSampling> rows, ulong logits, int vocab, ulong output, nint stream, KernelProfiler? profiler = null)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows.Length, _capacity);
        var seeds = _host.Span[.._capacity];
        var words = new Span<int>((byte*)_host.Pointer + ((long)_capacity * sizeof(ulong)), 3 * _capacity);
        var temperatures = System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(words[.._capacity]);
        var topKs = words.Slice(_capacity, _capacity);
        var topPs = System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(words.Slice(2 * _capacity, _capacity));
        for (int i = 0; i < rows.Length; i++)
        {
            seeds[i] = rows[i].Seed;
            temperatures[i] = rows[i].Temperature;
            topKs[i] = rows[i].TopK;
            topPs[i] = rows[i].TopP;
        }

        Driver.Check(Driver.cuMemcpyHtoDAsync(_device.Pointer, _host.Pointer, (nuint)_device.Bytes, stream));
        ulong seedsOnDevice = _device.Pointer;
        ulong temperaturesOnDevice = seedsOnDevice + ((ulong)_capacity * sizeof(ulong));
        ulong topKsOnDevice = temperaturesOnDevice + ((ulong)_capacity * sizeof(float));
        ulong topPsOnDevice = topKsOnDevice + ((ulong)_capacity * sizeof(int));
        // The step is folded into each row's seed on the host (SamplingState.StepSeed), so the kernel's step is 0.
        profiler?.Begin(stream);
        kernels.Launch("sample_rows", ((uint)rows.Length, 1), 1024, stream,
            [output, logits, KernelModule.Int(vocab), temperaturesOnDevice, topKsOnDevice, topPsOnDevice, seedsOnDevice, 0]);
        profiler?.End("sample_rows", stream);
    }

    public void Dispose()
    {
        _device.Dispose();
        _host.Dispose();
    }
}
