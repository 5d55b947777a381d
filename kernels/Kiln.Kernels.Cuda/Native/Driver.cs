using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kiln.Kernels.Cuda.Native;

/// <summary>
/// The CUDA driver API calls Kiln uses, bound by hand (no ManagedCuda). Device pointers are ulong (CUdeviceptr),
/// handles are nint. <see cref="Check"/> turns a status into a <see cref="CudaException"/> naming the call.
/// </summary>
internal static unsafe partial class Driver
{
    public const int Success = 0;
    public const int ErrorNoDevice = 100;
    public const int StreamNonBlocking = 1;
    public const int EventDefault = 0;
    public const int EventDisableTiming = 2;
    public const int CaptureModeThreadLocal = 1;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int AttributeMultiprocessorCount = 16;
    public const int FuncAttributeMaxDynamicSharedSize = 8;

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuInit(uint flags);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDriverGetVersion(out int version);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDeviceGetCount(out int count);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDeviceGetName(byte* name, int length, int device);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuCtxSetCurrent(nint context);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuCtxSynchronize();

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemAlloc_v2")]
    public static partial int cuMemAlloc(out ulong pointer, nuint bytes);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemFree_v2")]
    public static partial int cuMemFree(ulong pointer);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemAllocHost_v2")]
    public static partial int cuMemAllocHost(out nint pointer, nuint bytes);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuMemFreeHost(nint pointer);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, nint stream);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, nint stream);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuModuleLoadData(out nint module, void* image);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuModuleUnload(nint module);

    [LibraryImport(CudaLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out nint function, nint module, string name);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuFuncSetAttribute(nint function, int attribute, int value);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ, uint sharedBytes, nint stream, void** parameters, void** extra);

    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the kernel may overlap the end of the previous one.</summary>
    public const int LaunchAttributeProgrammaticStreamSerialization = 6;

    /// <summary>CUlaunchConfig.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridX;
        public uint GridY;
        public uint GridZ;
        public uint BlockX;
        public uint BlockY;
        public uint BlockZ;
        public uint SharedBytes;
        public nint Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    /// <summary>CUlaunchAttribute: an id, padding to 8 bytes, and a 64-byte value union.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 72)]
    public struct LaunchAttribute
    {
        [FieldOffset(0)]
        public int Id;

        [FieldOffset(8)]
        public int Value;
    }

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuLaunchKernelEx(LaunchConfig* config, nint function, void** parameters, void** extra);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuStreamCreate(out nint stream, uint flags);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int cuStreamDestroy(nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuStreamSynchronize(nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuEventCreate(out nint cudaEvent, uint flags);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(nint cudaEvent);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuEventRecord(nint cudaEvent, nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuEventSynchronize(nint cudaEvent);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuEventElapsedTime_v2")]
    public static partial int cuEventElapsedTimeV2(out float milliseconds, nint start, nint end);

    /// <summary>Milliseconds between two recorded events (cuEventElapsedTime, or its _v2 where a driver has only that).</summary>
    public static float ElapsedMilliseconds(nint start, nint end)
    {
        float ms;
        try
        {
            Check(cuEventElapsedTime(out ms, start, end));
        }
        catch (EntryPointNotFoundException)
        {
            Check(cuEventElapsedTimeV2(out ms, start, end));
        }

        return ms;
    }

    [LibraryImport(CudaLibraries.Driver, EntryPoint = "cuStreamBeginCapture_v2")]
    public static partial int cuStreamBeginCapture(nint stream, int mode);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuStreamEndCapture(nint stream, out nint graph);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuGraphLaunch(nint graphExec, nint stream);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuGraphExecDestroy(nint graphExec);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuGraphDestroy(nint graph);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuGetErrorName(int status, out nint name);

    /// <summary>Throws a <see cref="CudaException"/> naming <paramref name="call"/> unless <paramref name="status"/> is success.</summary>
    public static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != Success)
        {
            throw new CudaException($"{CallName(call)} failed: {ErrorName(status)} ({status})");
        }
    }

    public static string ErrorName(int status)
    {
        try
        {
            return cuGetErrorName(status, out nint name) == Success && name != 0 ? Marshal.PtrToStringUTF8(name) ?? "?" : "CUDA_ERROR_UNKNOWN";
        }
        catch (DllNotFoundException)
        {
            return "CUDA_ERROR_UNKNOWN";
        }
    }

    /// <summary>"Driver.cuMemAlloc(out p, n)" becomes "cuMemAlloc": the name a user can look up.</summary>
    internal static string CallName(string expression)
    {
        int paren = expression.IndexOf('(', StringComparison.Ordinal);
        string head = paren < 0 ? expression : expression[..paren];
        int dot = head.LastIndexOf('.');
        return dot < 0 ? head : head[(dot + 1)..];
    }
}
