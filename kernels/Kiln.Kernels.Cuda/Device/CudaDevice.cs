using System.Text;
using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>
/// One GPU and its primary context (the context the runtime API would use too, so libraries such as cuBLAS and NCCL
/// share it). Every thread that issues work calls <see cref="MakeCurrent"/> first.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    private bool _disposed;

    private CudaDevice(int ordinal, nint context)
    {
        Ordinal = ordinal;
        Context = context;
        Driver.Check(Driver.cuDeviceGetAttribute(out int major, Driver.AttributeComputeCapabilityMajor, ordinal));
        Driver.Check(Driver.cuDeviceGetAttribute(out int minor, Driver.AttributeComputeCapabilityMinor, ordinal));
        Driver.Check(Driver.cuDeviceGetAttribute(out int sms, Driver.AttributeMultiprocessorCount, ordinal));
        Driver.Check(Driver.cuDeviceTotalMem(out nuint total, ordinal));
        byte* name = stackalloc byte[256];
        Driver.Check(Driver.cuDeviceGetName(name, 256, ordinal));
        var bytes = new ReadOnlySpan<byte>(name, 256);
        int end = bytes.IndexOf((byte)0);
        Name = Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
        ComputeCapability = (major * 10) + minor;
        MultiprocessorCount = sms;
        TotalMemory = (long)total;
    }

    public int Ordinal { get; }

    public nint Context { get; }

    public string Name { get; }

    /// <summary>Major * 10 + minor: 90 for Hopper (H100, H200).</summary>
    public int ComputeCapability { get; }

    public int MultiprocessorCount { get; }

    public long TotalMemory { get; }

    /// <summary>Why the CUDA backend cannot run here, or null when a device is present.</summary>
    public static string? UnavailableReason()
    {
        try
        {
            CudaLibraries.EnsureResolver();
            int status = Driver.cuInit(0);
            if (status == Driver.ErrorNoDevice)
            {
                return "the CUDA driver is installed but reports no GPU (CUDA_ERROR_NO_DEVICE)";
            }

            if (status != Driver.Success)
            {
                return $"cuInit failed: {Driver.ErrorName(status)} ({status})";
            }

            Driver.Check(Driver.cuDeviceGetCount(out int count));
            return count > 0 ? null : "the CUDA driver reports no GPU";
        }
        catch (DllNotFoundException)
        {
            return "no NVIDIA GPU driver here (libcuda.so.1 was not found)";
        }
        catch (EntryPointNotFoundException e)
        {
            return $"the CUDA driver is too old for Kiln: {e.Message}";
        }
    }

    public static bool IsAvailable => UnavailableReason() is null;

    public static int Count
    {
        get
        {
            if (UnavailableReason() is not null)
            {
                return 0;
            }

            Driver.Check(Driver.cuDeviceGetCount(out int count));
            return count;
        }
    }

    /// <summary>Opens GPU <paramref name="ordinal"/>; throws <see cref="CudaUnavailableException"/> saying why when there is none.</summary>
    public static CudaDevice Open(int ordinal = 0)
    {
        if (UnavailableReason() is { } reason)
        {
            throw new CudaUnavailableException($"The CUDA backend cannot start: {reason}. Use the CPU backend (--device cpu) instead.");
        }

        Driver.Check(Driver.cuDeviceGetCount(out int count));
        if ((uint)ordinal >= (uint)count)
        {
            throw new CudaUnavailableException($"GPU {ordinal} was asked for, but this machine has {count}");
        }

        Driver.Check(Driver.cuDeviceGet(out int device, ordinal));
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(out nint context, device));
        Driver.Check(Driver.cuCtxSetCurrent(context));
        return new CudaDevice(device, context);
    }

    public void MakeCurrent() => Driver.Check(Driver.cuCtxSetCurrent(Context));

    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        Driver.Check(Driver.cuMemGetInfo(out nuint free, out nuint total));
        return ((long)free, (long)total);
    }

    public void Synchronize()
    {
        MakeCurrent();
        Driver.Check(Driver.cuCtxSynchronize());
    }

    public override string ToString() => $"{Name} (sm_{ComputeCapability}, {TotalMemory / (1L << 30)} GiB)";

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Driver.cuDevicePrimaryCtxRelease(Ordinal);
        }
    }
}
