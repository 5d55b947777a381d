using Kiln.Kernels.Cuda;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Cli;

/// <summary>
/// <c>kiln kernels</c> run as a user runs it: with NVRTC it fills the cache; without (every CI machine) it says in
/// one line that NVRTC is what it needs, writing nothing. Bad targets are refused by name. (The cache key a runner
/// then finds is checked on the CUDA emulator, AheadOfTimeChecks.)
/// </summary>
public sealed class CliKernelsTests
{
    private static readonly string[] LibraryFolders = ["/usr/lib/x86_64-linux-gnu", "/usr/local/cuda/lib64", "/usr/lib64", "/usr/lib"];

    [Fact]
    public async Task Kernels_FillTheCache_OrSayThatNvrtcIsWhatTheyNeed()
    {
        // Which outcome is right is decided here, apart from the code under test: is an NVRTC library where the
        // loader finds one (the names CudaLibraries tries, in the system library folders)?
        bool nvrtc = LibraryFolders
            .Where(Directory.Exists)
            .Any(folder => Directory.GetFiles(folder, "libnvrtc.so*").Any(f => !f.Contains("builtins", StringComparison.Ordinal)));
        using var cache = new TempDirectory();
        var (exitCode, stdout, stderr) = await KilnProcess.RunAsync(["kernels", "--arch", "sm_90", "--cache", cache.Path]);

        if (nvrtc)
        {
            Assert.True(exitCode == 0, $"NVRTC is installed, but kiln kernels failed: {stderr}");
            Assert.StartsWith("sm_90, head size 32, attention group 2: compiled", stdout, StringComparison.Ordinal); // the demo model
            Assert.Matches(@", for runners with NVRTC \d+\.\d+\s*$", stdout); // the version is part of the cache key
            Assert.Single(Directory.GetFiles(cache.Path, "kiln-sm90-*.cubin"));
            return;
        }

        Assert.Equal(1, exitCode);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("kiln: error: compiling kernels ahead needs NVRTC", line, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(cache.Path));
    }

    [Theory]
    [InlineData("9x")]
    [InlineData("60")]
    public async Task Kernels_RefuseATargetThatIsNotACapabilityTheyRunOn(string architecture)
    {
        var (exitCode, _, stderr) = await KilnProcess.RunAsync(["kernels", "--arch", architecture]);

        Assert.Equal(1, exitCode);
        Assert.Contains($"--arch: '{architecture}' is not a compute capability", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kernels_WithoutATargetOrAGpu_AskForOne()
    {
        if (CudaBackend.UnavailableReason is null)
        {
            Assert.Skip("this machine has a GPU: kiln kernels compiles for it");
        }

        var (exitCode, _, stderr) = await KilnProcess.RunAsync(["kernels"]);

        Assert.Equal(1, exitCode);
        Assert.Contains("name the targets, e.g. --arch 90", stderr, StringComparison.Ordinal);
    }
}
