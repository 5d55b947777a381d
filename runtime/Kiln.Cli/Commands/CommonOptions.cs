using System.CommandLine;
using System.Globalization;

namespace Kiln.Cli.Commands;

/// <summary>Options shared by several commands, and parsing of their values.</summary>
internal static class CommonOptions
{
    public static Option<string?> Model() => new("--model", "-m")
    {
        Description = "A Hugging Face model directory or a GGUF file. Omitted: the built-in demo model.",
    };

    public static Option<string> Ids(bool required) => new("--ids")
    {
        Description = "Token ids, separated by commas (e.g. 1,2,3).",
        Required = required,
    };

    public static Option<int> TensorParallel() => new("--tp")
    {
        Description = "Tensor-parallel degree: split the model over this many ranks (CPU threads here, GPUs with CUDA).",
        DefaultValueFactory = _ => 1,
    };

    /// <summary><c>--device cpu|cuda</c>: the backend that runs the model.</summary>
    public static Option<string> Device() => new Option<string>("--device")
    {
        Description = "Where the model runs: cpu, or cuda (NVIDIA GPUs; with --tp N, one rank per GPU).",
        DefaultValueFactory = _ => CudaCli.Cpu,
    }.AcceptOnlyFromAmong(CudaCli.Cpu, CudaCli.Cuda);

    public static int[] ParseIds(string text)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]) || ids[i] < 0)
            {
                throw new ArgumentException($"--ids: '{parts[i]}' is not a token id (a non-negative integer)");
            }
        }

        return ids;
    }
}
