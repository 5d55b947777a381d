using System.Runtime.InteropServices;

namespace Kiln.Runtime.Tensors;

/// <summary>
/// 64-byte aligned native memory that never moves: weights built in memory (the demo model, widened tensors) and
/// activation buffers, whose addresses the kernels keep across calls without pinning.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    public NativeBuffer(long bytes)
    {
        ByteLength = Math.Max(bytes, 1);
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)ByteLength, 64);
        NativeMemory.Clear(Pointer, (nuint)ByteLength);
    }

    public byte* Pointer { get; private set; }

    public long ByteLength { get; }

    public float* Floats => (float*)Pointer;

    public Span<float> AsFloats(long offset, int count) => new((float*)Pointer + offset, count);

    public void Dispose()
    {
        if (Pointer != null)
        {
            NativeMemory.AlignedFree(Pointer);
            Pointer = null;
        }
    }
}
