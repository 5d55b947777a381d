using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>
/// Compiles Kiln's embedded CUDA C++ (Kernels/*.cu) with NVRTC into a cubin for the device's architecture. The cubin
/// is kept on disk under a key of source, options, architecture and NVRTC version, so a warm restart compiles nothing.
/// </summary>
public static unsafe class KernelCompiler
{
    /// <summary>The kernel sources, helpers first, as one translation unit.</summary>
    public static string Source()
    {
        var assembly = typeof(KernelCompiler).Assembly;
        var names = assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("Kiln.Kernels.", StringComparison.Ordinal))
            .OrderBy(n => n.EndsWith(".cuh", StringComparison.Ordinal) ? 0 : 1)
            .ThenBy(n => n, StringComparer.Ordinal);
        var text = new StringBuilder();
        foreach (string name in names)
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            text.Append("// ---- ").Append(name).Append('\n').Append(reader.ReadToEnd()).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Where compiled kernels are kept: KILN_CUDA_CACHE, else $XDG_CACHE_HOME/kiln/cuda, else ~/.cache/kiln/cuda.</summary>
    public static string DefaultCacheDirectory()
    {
        if (Environment.GetEnvironmentVariable("KILN_CUDA_CACHE") is { Length: > 0 } configured)
        {
            return configured;
        }

        string root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "kiln", "cuda");
    }

    /// <summary>Returns the cubin for <paramref name="source"/> on sm_<paramref name="architecture"/>, from the cache when it is there.</summary>
    public static byte[] Compile(string source, int architecture, IReadOnlyList<string> defines, string? cacheDirectory, out bool fromCache)
    {
        var (options, path) = OptionsAndCachePath(source, architecture, defines, cacheDirectory);
        if (path is not null && File.Exists(path))
        {
            fromCache = true;
            return File.ReadAllBytes(path);
        }

        fromCache = false;
        byte[] cubin = CompileWithNvrtc(source, options);
        if (path is not null)
        {
            try
            {
                Directory.CreateDirectory(cacheDirectory!);
                string temporary = $"{path}.{Environment.ProcessId}.tmp";
                File.WriteAllBytes(temporary, cubin);
                File.Move(temporary, path, overwrite: true); // atomic: a concurrent reader never sees half a file
            }
            catch (IOException)
            {
                // A read-only or full cache folder costs a compile at the next start, nothing more.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return cubin;
    }

    /// <summary>The cubin for these inputs if the cache has it; compiles nothing.</summary>
    public static bool TryReadCached(string source, int architecture, IReadOnlyList<string> defines, string? cacheDirectory, [NotNullWhen(true)] out byte[]? cubin)
    {
        var (_, path) = OptionsAndCachePath(source, architecture, defines, cacheDirectory);
        cubin = path is not null && File.Exists(path) ? File.ReadAllBytes(path) : null;
        return cubin is not null;
    }

    /// <summary>
    /// The version of the NVRTC found ("13.0"): part of the cache key, so a cache filled ahead of time serves only
    /// runners with the same version.
    /// </summary>
    public static string NvrtcVersion()
    {
        CudaLibraries.EnsureResolver();
        Nvrtc.Check(Nvrtc.nvrtcVersion(out int major, out int minor));
        return $"{major}.{minor}";
    }

    /// <summary>NVRTC's options, and the cache file keyed by source, options, architecture and NVRTC version.</summary>
    private static (List<string> Options, string? Path) OptionsAndCachePath(string source, int architecture, IReadOnlyList<string> defines, string? cacheDirectory)
    {
        string version = NvrtcVersion();
        var options = new List<string> { $"--gpu-architecture=sm_{architecture}", "--std=c++17", "-default-device", "-DKILN_NVRTC" };
        options.AddRange(defines.Select(d => $"-D{d}"));
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{source}\0{string.Join(' ', options)}\0nvrtc {version}")))[..24].ToLowerInvariant();
        return (options, cacheDirectory is null ? null : Path.Combine(cacheDirectory, $"kiln-sm{architecture}-{key}.cubin"));
    }

    private static byte[] CompileWithNvrtc(string source, List<string> options)
    {
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out nint program, source, "kiln_kernels.cu", 0, 0, 0));
        try
        {
            var encoded = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = encoded.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            int status;
            try
            {
                byte** pointers = stackalloc byte*[encoded.Length];
                for (int i = 0; i < encoded.Length; i++)
                {
                    pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                }

                status = Nvrtc.nvrtcCompileProgram(program, encoded.Length, pointers);
            }
            finally
            {
                foreach (var handle in handles)
                {
                    handle.Free();
                }
            }

            if (status != 0)
            {
                throw new CudaException($"NVRTC could not compile Kiln's kernels ({string.Join(' ', options)}):\n{Log(program)}");
            }

            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out nuint size));
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, c));
            }

            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static string Log(nint program)
    {
        if (Nvrtc.nvrtcGetProgramLogSize(program, out nuint size) != 0 || size <= 1)
        {
            return "(no log)";
        }

        var log = new byte[(int)size];
        fixed (byte* l = log)
        {
            Nvrtc.nvrtcGetProgramLog(program, l);
        }

        return Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }
}
