using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Kernels.Cuda.Native;

/// <summary>NCCL for the tensor-parallel all-reduce, one rank per GPU.</summary>
internal static unsafe partial class Nccl
{
    public const int Float32 = 7;
    public const int Sum = 0;

    /// <summary>ncclUniqueId is an opaque 128-byte blob.</summary>
    [InlineArray(128)]
    public struct UniqueId
    {
        private byte _element;
    }

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclGetVersion(out int version);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclGetUniqueId(out UniqueId id);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclCommInitRank(out nint comm, int ranks, UniqueId id, int rank);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclCommInitAll(nint* comms, int count, int* devices);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclCommDestroy(nint comm);

    /// <summary>Ends the communicator's pending collectives with an error, from any thread: how a failed rank releases the others.</summary>
    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclCommAbort(nint comm);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclAllReduce(ulong send, ulong receive, nuint count, int dataType, int op, nint comm, nint stream);

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclGroupStart();

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial int ncclGroupEnd();

    [LibraryImport(CudaLibraries.Nccl)]
    public static partial nint ncclGetErrorString(int status);

    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0)
        {
            throw new CudaException($"{Driver.CallName(call)} failed: {Marshal.PtrToStringUTF8(ncclGetErrorString(status))} ({status})");
        }
    }
}
