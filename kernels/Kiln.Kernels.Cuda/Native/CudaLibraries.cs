using System.Reflection;
using System.Runtime.InteropServices;

namespace Kiln.Kernels.Cuda.Native;

/// <summary>
/// Resolves the CUDA libraries by their versioned names. The toolkit libraries (NVRTC, cuBLAS) are often not on the
/// loader's path (a CUDA image keeps them under /usr/local/cuda-X/targets/...), so the known install folders and
/// CUDA_PATH are tried by full path before the bare name.
/// </summary>
internal static class CudaLibraries
{
    public const string Driver = "kiln-cuda";
    public const string Nvrtc = "kiln-nvrtc";
    public const string CuBlas = "kiln-cublas";
    public const string Nccl = "kiln-nccl";

    private static readonly string[] DriverNames = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"];
    // libnvrtc.so.11.2 is NVRTC 11.2 to 11.8 (Debian 12's libnvrtc11.2 is 11.8, which knows up to sm_90): enough for
    // `kiln kernels` and the kernel checks on a machine with no CUDA toolkit (kernels/tools/install-nvrtc.sh).
    private static readonly string[] NvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "libnvrtc.so.11.2", "nvrtc64_130_0.dll", "nvrtc64_120_0.dll"];
    private static readonly string[] CuBlasNames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so", "cublas64_13.dll", "cublas64_12.dll"];
    private static readonly string[] CuBlasLtNames = ["libcublasLt.so.13", "libcublasLt.so.12"];
    private static readonly string[] NcclNames = ["libnccl.so.2", "libnccl.so"];
    private static int s_registered;

    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        Driver => Load(DriverNames),
        Nvrtc => Load(NvrtcNames),
        CuBlas => LoadCuBlas(),
        Nccl => Load(NcclNames),
        _ => IntPtr.Zero,
    };

    private static IntPtr LoadCuBlas()
    {
        // cuBLAS finds cuBLASLt through the loader path; loading it first by full path makes that lookup succeed.
        Load(CuBlasLtNames);
        return Load(CuBlasNames);
    }

    private static IntPtr Load(string[] names)
    {
        foreach (string folder in Folders())
        {
            foreach (string name in names)
            {
                string path = Path.Combine(folder, name);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out IntPtr handle))
                {
                    return handle;
                }
            }
        }

        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, out IntPtr handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero; // the runtime then throws DllNotFoundException naming the library
    }

    private static IEnumerable<string> Folders()
    {
        foreach (string variable in new[] { "KILN_CUDA_LIB", "CUDA_PATH", "CUDA_HOME" })
        {
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } root)
            {
                yield return root;
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "targets", "x86_64-linux", "lib");
            }
        }

        foreach (string version in new[] { "cuda", "cuda-13.0", "cuda-13", "cuda-12.9", "cuda-12.8", "cuda-12" })
        {
            yield return $"/usr/local/{version}/targets/x86_64-linux/lib";
            yield return $"/usr/local/{version}/lib64";
        }

        yield return "/usr/lib/x86_64-linux-gnu";
    }
}
