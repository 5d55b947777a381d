using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Kernels.Cuda.Native;

/// <summary>NVRTC: compiles CUDA C++ source to a cubin for the device at hand, at warm-up.</summary>
internal static unsafe partial class Nvrtc
{
    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcVersion(out int major, out int minor);

    [LibraryImport(CudaLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCreateProgram(out nint program, string source, string name, int headerCount, nint headers, nint includeNames);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcCompileProgram(nint program, int optionCount, byte** options);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcGetProgramLogSize(nint program, out nuint size);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcGetProgramLog(nint program, byte* log);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcGetCUBINSize(nint program, out nuint size);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcGetCUBIN(nint program, byte* cubin);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcDestroyProgram(ref nint program);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial nint nvrtcGetErrorString(int status);

    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0)
        {
            throw new CudaException($"{Driver.CallName(call)} failed: {Marshal.PtrToStringUTF8(nvrtcGetErrorString(status))} ({status})");
        }
    }
}
