using Kiln.Runtime.Tensors;

namespace Kiln.Tests.Numerics;

/// <summary>Both kinds of native buffer are 64-byte aligned and read zero before anything is written.</summary>
public sealed unsafe class NativeBufferTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    [InlineData(40 << 20)] // past glibc's largest mmap threshold: fresh pages, no memset
    public void Buffers_AreAlignedAndZero(long bytes)
    {
        using var eager = new NativeBuffer(bytes);
        using var onDemand = NativeBuffer.ZeroedOnDemand(bytes);

        foreach (var buffer in new[] { eager, onDemand })
        {
            Assert.Equal(0, (long)buffer.Pointer % 64);
            Assert.Equal(bytes, buffer.ByteLength);
            for (long i = 0; i < bytes; i += Math.Max(1, bytes / 97))
            {
                Assert.Equal(0, buffer.Pointer[i]);
            }

            buffer.Pointer[bytes - 1] = 7; // the last byte is the buffer's own
            Assert.Equal(7, buffer.Pointer[bytes - 1]);
        }
    }
}
