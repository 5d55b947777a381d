using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>Page-locked host memory: the staging area for each step's small arrays, copied to the device asynchronously.</summary>
public sealed unsafe class PinnedBuffer<T> : IDisposable
    where T : unmanaged
{
    private nint _pointer;

    public PinnedBuffer(int length)
    {
        Length = length;
        Driver.Check(Driver.cuMemAllocHost(out _pointer, (nuint)((long)Math.Max(length, 1) * sizeof(T))));
    }

    public int Length { get; }

    public T* Pointer => (T*)_pointer;

    public Span<T> Span => new((void*)_pointer, Length);

    public void Dispose()
    {
        if (_pointer != 0)
        {
            Driver.cuMemFreeHost(_pointer);
            _pointer = 0;
        }
    }
}
