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

    public static Option<int> TensorParallel() =>
        Int("--tp", "Tensor-parallel degree: split the model over this many ranks (CPU threads here, GPUs with CUDA).", 1, minimum: 1);

    /// <summary>An integer option whose mistakes are one line naming it: not an integer, or below <paramref name="minimum"/>.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int minimum = int.MinValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            {
                result.AddError($"{name}: '{text}' is not an integer");
                return defaultValue;
            }

            if (value < minimum)
            {
                result.AddError($"{name} must be at least {minimum}, not {value}");
            }

            return value;
        },
    };

    /// <summary>A number option whose mistakes are one line naming it: not a number, or outside [minimum, maximum].</summary>
    public static Option<float> Float(string name, string description, float defaultValue, float minimum, float maximum) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) || !float.IsFinite(value))
            {
                result.AddError($"{name}: '{text}' is not a number");
                return defaultValue;
            }

            if (value < minimum || value > maximum)
            {
                result.AddError($"{name} must be between {minimum.ToString(CultureInfo.InvariantCulture)} and {maximum.ToString(CultureInfo.InvariantCulture)}, not {text}");
            }

            return value;
        },
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
