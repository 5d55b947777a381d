namespace Kiln.Tests.Infrastructure;

/// <summary>
/// Bytes the calling thread allocates in each of several windows of the same work. A per-call allocation shows in every
/// window; the runtime's own one-off allocations (tiered compilation recompiling hot methods, which on a loaded
/// two-core machine can land well after the warm-up) in a few at most. So a steady-state test asserts that the
/// smallest window allocated nothing.
/// </summary>
internal static class ThreadAllocations
{
    public static long[] PerWindow(int windows, Action work)
    {
        var bytes = new long[windows];
        for (int w = 0; w < windows; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            work();
            bytes[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }

        return bytes;
    }
}
