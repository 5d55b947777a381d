using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>A block of device memory (cuMemAlloc: plain device memory, never managed memory).</summary>
public sealed unsafe class DeviceBuffer : IDisposable
{
    private ulong _pointer;

    public DeviceBuffer(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Bytes = bytes;
        int status = Driver.cuMemAlloc(out _pointer, (nuint)Math.Max(bytes, 256));
        if (status != Driver.Success)
        {
            throw new CudaException($"cuMemAlloc of {bytes:N0} bytes failed: {Driver.ErrorName(status)} ({status})");
        }
    }

    public long Bytes { get; }

    public ulong Pointer => _pointer != 0 ? _pointer : throw new ObjectDisposedException(nameof(DeviceBuffer));

    /// <summary>Address of element <paramref name="index"/> of <paramref name="elementBytes"/> bytes each.</summary>
    public ulong At(long index, int elementBytes) => Pointer + (ulong)(index * elementBytes);

    public void Upload<T>(ReadOnlySpan<T> source, nint stream, long byteOffset = 0)
        where T : unmanaged
    {
        long bytes = (long)source.Length * sizeof(T);
        CheckRange(byteOffset, bytes);
        fixed (T* s = source)
        {
            Driver.Check(Driver.cuMemcpyHtoDAsync(Pointer + (ulong)byteOffset, s, (nuint)bytes, stream));
            Driver.Check(Driver.cuStreamSynchronize(stream)); // the source is pageable managed memory
        }
    }

    public void Download<T>(Span<T> destination, nint stream, long byteOffset = 0)
        where T : unmanaged
    {
        long bytes = (long)destination.Length * sizeof(T);
        CheckRange(byteOffset, bytes);
        fixed (T* d = destination)
        {
            Driver.Check(Driver.cuMemcpyDtoHAsync(d, Pointer + (ulong)byteOffset, (nuint)bytes, stream));
            Driver.Check(Driver.cuStreamSynchronize(stream));
        }
    }

    /// <summary>Fills every byte with <paramref name="value"/>: tests poison outputs this way before a kernel runs.</summary>
    public void Fill(byte value, nint stream) => Driver.Check(Driver.cuMemsetD8Async(Pointer, value, (nuint)Bytes, stream));

    private void CheckRange(long offset, long bytes)
    {
        if (offset < 0 || offset + bytes > Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{bytes} bytes at {offset} do not fit a buffer of {Bytes}");
        }
    }

    public void Dispose()
    {
        if (_pointer != 0)
        {
            Driver.cuMemFree(_pointer);
            _pointer = 0;
        }
    }
}
