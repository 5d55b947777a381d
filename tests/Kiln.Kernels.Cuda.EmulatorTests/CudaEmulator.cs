using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// Builds the CUDA emulator (kernels/emulator/build.sh) into a temporary folder keyed by its sources, and points
/// Kiln's CUDA library resolver at it (KILN_CUDA_LIB) before any CUDA call of this process.
/// </summary>
internal static partial class CudaEmulator
{
    [ModuleInitializer]
    internal static void SelectForThisProcess()
    {
        // Four devices, so tensor-parallel groups run over two and four ranks with a real all-reduce. The emulator
        // reads the native environment, which Environment.SetEnvironmentVariable does not change on Unix.
        setenv("KILN_EMU_DEVICES", "4", overwrite: 0);

        TestDevice.UseEmulator(Build);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    /// <summary>Builds the emulator unless this version is already built; returns why it could not, or null.</summary>
    private static string? Build()
    {
        if (Repository.Root() is not { } root)
        {
            return "the repository is not above the test binaries; the emulator builds from a checkout";
        }

        string sources = Path.Combine(root, "kernels", "emulator");
        var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string file in Directory.GetFiles(sources).Where(f => f.EndsWith(".cpp", StringComparison.Ordinal) || f.EndsWith(".h", StringComparison.Ordinal) || f.EndsWith(".sh", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            hash.AppendData(File.ReadAllBytes(file));
        }

        string output = Path.Combine(Path.GetTempPath(), "kiln-cuda-emulator", Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant());
        if (!File.Exists(Path.Combine(output, "libkiln-cuda-emulator.so")))
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(sources, "build.sh"), output])
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                })!;
                var errors = process.StandardError.ReadToEndAsync();
                process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0)
                {
                    return $"kernels/emulator/build.sh failed: {errors.Result.Trim()}";
                }
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                return $"bash could not run kernels/emulator/build.sh: {e.Message}";
            }
        }

        Environment.SetEnvironmentVariable("KILN_CUDA_LIB", output);
        return null;
    }
}
