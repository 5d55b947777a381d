using System.Diagnostics;
using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>What must hold on any machine: a clear answer where there is no GPU, and kernel sources that parse.</summary>
public sealed class NoGpuTests
{
    [Fact]
    public void WithoutAGpu_OpeningTheBackendSaysWhyAndPointsToTheCpu()
    {
        if (TestDevice.MissingReason is null)
        {
            Assert.Skip("this machine has a GPU; the no-GPU message is checked where there is none");
        }

        var error = Assert.Throws<CudaUnavailableException>(() => CudaDevice.Open());
        Assert.Contains("cannot start", error.Message, StringComparison.Ordinal);
        Assert.Contains("--device cpu", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, CudaDevice.Count);
    }

    [Fact]
    public void EveryKernelTheRunnerLaunches_IsInTheEmbeddedSource()
    {
        string source = KernelCompiler.Source();
        Assert.StartsWith("// ---- Kiln.Kernels.common.cuh", source, StringComparison.Ordinal);
        foreach (string name in KernelModule.KernelNames)
        {
            // Declared directly, or through gemv.cu's GEMV_KERNEL(name, ...), GEMV_FUSED_KERNEL(name, ...) and, for the f16
            // and Q8 products, GEMV_COMPACT_FORMAT(suffix, ...) macros.
            if (name.EndsWith("_f16", StringComparison.Ordinal) || name.EndsWith("_q8", StringComparison.Ordinal) || name.Contains("_f16_", StringComparison.Ordinal) || name.Contains("_q8_", StringComparison.Ordinal))
            {
                string suffix = name.Contains("q8", StringComparison.Ordinal) ? "q8" : "f16";
                Assert.Contains($"GEMV_COMPACT_FORMAT({suffix}, ", source, StringComparison.Ordinal);
                Assert.Contains(name, KernelModule.CompactKernels(suffix));
                continue;
            }

            Assert.Matches($@"extern ""C"" __global__ void (__launch_bounds__\([^)]*\)\s+)?{name}\(|GEMV_(FUSED_)?KERNEL\({name},", source);
        }
    }

    [Fact]
    public void KernelSources_PassTheCompilerSyntaxCheck_NeedsGxx()
    {
        string root = RepositoryRoot();
        string script = Path.Combine(root, "kernels", "tools", "check-kernels.sh");
        if (!File.Exists("/usr/bin/g++") && !File.Exists("/usr/local/bin/g++"))
        {
            Assert.Skip("needs g++ to parse the CUDA sources through kernels/tools/cuda_shim.h");
        }

        foreach (int headDim in new[] { 64, 128 })
        {
            using var process = Process.Start(new ProcessStartInfo("bash", [script, $"-DHEAD_DIM={headDim}"])
            {
                WorkingDirectory = root,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, output);
        }
    }

    private static string RepositoryRoot()
    {
        string? root = Repository.Root();
        if (root is null)
        {
            Assert.Skip("the repository is not above the test binaries (a published copy): the syntax check runs from a checkout");
        }

        return root ?? "";
    }
}
