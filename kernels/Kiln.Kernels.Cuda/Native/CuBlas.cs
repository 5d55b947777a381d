using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Kernels.Cuda.Native;

/// <summary>The cuBLAS calls for the linear layers: GemmEx with bf16 inputs and fp32 accumulation.</summary>
internal static unsafe partial class CuBlas
{
    public const int OpN = 0;
    public const int OpT = 1;
    public const int DataF32 = 0;
    public const int DataF16 = 2;
    public const int DataBF16 = 14;
    public const int Compute32F = 68;
    public const int GemmDefault = -1;

    [LibraryImport(CudaLibraries.CuBlas, EntryPoint = "cublasCreate_v2")]
    public static partial int cublasCreate(out nint handle);

    [LibraryImport(CudaLibraries.CuBlas, EntryPoint = "cublasDestroy_v2")]
    public static partial int cublasDestroy(nint handle);

    [LibraryImport(CudaLibraries.CuBlas, EntryPoint = "cublasSetStream_v2")]
    public static partial int cublasSetStream(nint handle, nint stream);

    [LibraryImport(CudaLibraries.CuBlas, EntryPoint = "cublasSetWorkspace_v2")]
    public static partial int cublasSetWorkspace(nint handle, ulong workspace, nuint bytes);

    [LibraryImport(CudaLibraries.CuBlas)]
    public static partial int cublasGemmEx(
        nint handle, int transA, int transB, int m, int n, int k, float* alpha,
        ulong a, int aType, int lda, ulong b, int bType, int ldb, float* beta,
        ulong c, int cType, int ldc, int computeType, int algorithm);

    [LibraryImport(CudaLibraries.CuBlas)]
    public static partial nint cublasGetStatusName(int status);

    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0)
        {
            throw new CudaException($"{Driver.CallName(call)} failed: {Marshal.PtrToStringUTF8(cublasGetStatusName(status))} ({status})");
        }
    }
}
