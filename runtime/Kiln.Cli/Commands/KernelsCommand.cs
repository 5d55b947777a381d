using System.CommandLine;
using System.Globalization;
using Kiln.Kernels.Cuda;
using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Loading;

namespace Kiln.Cli.Commands;

/// <summary>
/// <c>kiln kernels</c>: compile a model's CUDA kernels into the kernel cache ahead of time, on a machine without a
/// GPU (an image build, a job writing the volume pods mount at KILN_CUDA_CACHE), so that no pod compiles at warm-up.
/// </summary>
internal static class KernelsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        model.Description += " Only its configuration is read (a lone config.json will do).";
        var architectures = new Option<int[]>("--arch")
        {
            Description = "Compute capabilities to compile for, e.g. 90 (H100, H200) or 80 (A100); repeat or separate with commas. Omitted: this machine's GPU.",
            AllowMultipleArgumentsPerToken = true,
            CustomParser = result => [.. result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Select(ParseArchitecture)],
        };
        var tp = CommonOptions.TensorParallel();
        var cache = new Option<string?>("--cache") { Description = "The kernel cache to fill. Omitted: KILN_CUDA_CACHE, else ~/.cache/kiln/cuda." };
        var command = new Command("kernels", "Compile a model's CUDA kernels into the kernel cache ahead of time (needs NVRTC, not a GPU).")
        {
            model, architectures, tp, cache,
        };
        command.SetAction(result =>
        {
            var config = ModelLoader.ReadConfig(result.GetValue(model));
            int[] targets = result.GetValue(architectures) is { Length: > 0 } given ? given : [ThisMachinesArchitecture()];
            foreach (var built in CudaBackend.CompileKernelsAhead(config, targets, result.GetValue(tp), result.GetValue(cache)))
            {
                string what = built.FromCache ? "already in the cache" : $"compiled in {built.Time.TotalSeconds:F2} s";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"sm_{built.Architecture}, head size {built.HeadDim}, attention group {built.GqaGroup}: {what} ({built.Bytes:N0} bytes) in {built.CacheDirectory}, for runners with NVRTC {built.NvrtcVersion}"));
            }

            return 0;
        });
        return command;
    }

    private static int ParseArchitecture(string text)
    {
        string digits = text.StartsWith("sm_", StringComparison.Ordinal) ? text[3..] : text;
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value is >= 70 and < 1000
            ? value
            : throw new ArgumentException($"--arch: '{text}' is not a compute capability such as 90 or sm_90 (7.0 or later)");
    }

    private static int ThisMachinesArchitecture()
    {
        if (CudaBackend.UnavailableReason is { } reason)
        {
            throw new ArgumentException($"--arch was not given and this machine's GPU cannot be asked ({reason}); name the targets, e.g. --arch 90");
        }

        using var device = CudaDevice.Open();
        return device.ComputeCapability;
    }
}
