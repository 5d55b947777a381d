using System.Diagnostics;
using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
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
            // gemv.cu builds its products through macros (GEMV_KERNEL, GEMV_FUSED_KERNEL, GEMV_ROPE_KERNEL and, for the f16
            // and Q8 products, GEMV_COMPACT_FORMAT), each with its one-token form NAME_t1.
            string product = GemvVariant.ProductOf(name);
            if (GemvVariant.Products.Contains(product))
            {
                // A product's launch name is the product itself or its one-token form: exactly one of the two.
                Assert.True(name == product || name == product + "_t1", $"{name} is neither the product {product} nor its one-token form");
                string suffix = product.Contains("_q8", StringComparison.Ordinal) ? "q8" : product.Contains("_f16", StringComparison.Ordinal) ? "f16" : "";
                Assert.Matches(suffix.Length > 0 ? $@"GEMV_COMPACT_FORMAT\({suffix}, |GEMV_ROPE_KERNEL\({product}," : $@"GEMV_(FUSED_|ROPE_)?KERNEL\({product},", source);
                continue;
            }

            Assert.Matches($@"extern ""C"" __global__ void (__launch_bounds__\([^)]*\)\s+)?{name}\(", source);
        }
    }

    [Fact]
    public void KernelSources_PassTheCompilerSyntaxCheck_NeedsGxx()
    {
        string root = RepositoryRoot();
        if (!File.Exists("/usr/bin/g++") && !File.Exists("/usr/local/bin/g++"))
        {
            Prerequisite.Missing("needs g++ to parse the CUDA sources through kernels/tools/cuda_shim.h");
        }

        foreach (int headDim in new[] { 64, 128 })
        {
            var (exitCode, output) = RunScript(root, "check-kernels.sh", $"-DHEAD_DIM={headDim}");
            Assert.True(exitCode == 0, output);
        }
    }

    /// <summary>
    /// The kernels as a GPU compiler's optimiser sees them (clang's CUDA device compiler, to PTX): no kernel may keep
    /// a per-thread array in local memory, which turns its hot loop's register traffic into memory traffic. Shapes:
    /// the GPU benchmark's model (head size 64, 4 query heads a key head) and a head size of 128 with one.
    /// </summary>
    [Fact]
    public void KernelsCompiledToPtx_KeepEveryArrayInRegisters_NeedsClang()
    {
        string root = RepositoryRoot();
        if (!File.Exists("/usr/bin/clang-14") && !File.Exists("/usr/bin/clang"))
        {
            Assert.Skip("needs clang with the NVPTX target (apt install clang-14) to compile the kernels to PTX");
        }

        foreach (var (headDim, group) in new[] { (64, 4), (128, 1) })
        {
            var (exitCode, output) = RunScript(root, "check-ptx.sh", $"-DHEAD_DIM={headDim}", $"-DGQA_GROUP={group}");
            Assert.True(exitCode == 0, output);
            Assert.Contains("keep their arrays in registers", output, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The kernels as the GPU gets them: the real NVRTC compiles them, with the backend's options, without an error or
    /// a warning (a warning is often a template instance that does not do what it was meant to), into a module that
    /// has every kernel the runner looks up. Shapes: the GPU benchmark's model on Hopper, and a head size of 128 with
    /// a group of one on Ampere.
    /// </summary>
    [Fact]
    public void KernelsCompiledByNvrtc_CompileWithoutWarnings_NeedsNvrtc()
    {
        string root = RepositoryRoot();
        foreach (var (architecture, headDim, group) in new[] { ("sm_90", 64, 4), ("sm_80", 128, 1) })
        {
            var (exitCode, output) = RunScript(root, "check-nvrtc.sh", "--all", "--arch", architecture, $"-DHEAD_DIM={headDim}", $"-DGQA_GROUP={group}");
            if (exitCode == 2)
            {
                Prerequisite.Missing($"needs NVRTC, not a GPU (on Debian 12: kernels/tools/install-nvrtc.sh): {output.Trim()}");
            }

            Assert.True(exitCode == 0, output);
            Assert.Contains("kernels compiled without warnings", output, StringComparison.Ordinal);
            var compiled = output.Split('\n').Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(fields => fields.Length == 5).Select(fields => fields[0]).ToHashSet();
            string[] missing = [.. KernelModule.KernelNames.Where(name => !compiled.Contains(name))];
            Assert.True(missing.Length == 0, $"not in the module NVRTC compiled ({architecture}): {string.Join(", ", missing)}");
        }
    }

    private static (int ExitCode, string Output) RunScript(string root, string name, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(root, "kernels", "tools", name), .. arguments])
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.Result);
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
