using Kiln.Kernels.Cuda;

namespace Kiln.Tests.Cli;

/// <summary>
/// <c>kiln --device</c>, run as a user runs it (<c>dotnet kiln.dll</c>, the tool's build beside the tests): without a
/// GPU, cuda is one line on stderr saying why and pointing to the CPU, not a stack trace; unknown devices are refused.
/// </summary>
public sealed class CliDeviceTests
{
    [Theory]
    [InlineData("generate", "--prompt", "hi", "--max-tokens", "2")]
    [InlineData("logits", "--ids", "1,2,3", "--greedy", "1")]
    public async Task CudaWithoutAGpu_SaysWhyAndPointsToTheCpu(params string[] arguments)
    {
        if (CudaBackend.UnavailableReason is not { } reason)
        {
            Assert.Skip("this machine has a GPU; the no-GPU message is checked where there is none");
            return;
        }

        var (exitCode, stdout, stderr) = await KilnProcess.RunAsync([.. arguments, "--device", "cuda"]);

        Assert.NotEqual(0, exitCode);
        Assert.Equal(string.Empty, stdout);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("kiln: error: The CUDA backend cannot start", line, StringComparison.Ordinal);
        Assert.Contains(reason, line, StringComparison.Ordinal);
        Assert.Contains("--device cpu", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownDevice_IsRefusedWithTheChoices()
    {
        var (exitCode, stdout, stderr) = await KilnProcess.RunAsync(["generate", "--prompt", "hi", "--device", "banana"]);

        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain("hi", stdout.Split('\n')[0], StringComparison.Ordinal); // nothing was generated
        Assert.Contains("'banana'", stderr, StringComparison.Ordinal);
        Assert.Contains("'cpu'", stderr, StringComparison.Ordinal);
        Assert.Contains("'cuda'", stderr, StringComparison.Ordinal);
    }
}
