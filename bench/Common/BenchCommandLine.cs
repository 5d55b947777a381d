using System.CommandLine;
using System.Globalization;

namespace Kiln.Bench.Common;

/// <summary>
/// System.CommandLine pieces the benchmarks share (Kiln.Bench and Kiln.Bench.Cuda link this file): numeric options with
/// defaults, read with the invariant culture as before; comma-separated integer lists; and the exit code of a command
/// line that does not parse.
/// </summary>
internal static class BenchCommandLine
{
    /// <summary>Exit code of a command line that does not parse; the errors and the help are printed first.</summary>
    public const int UsageError = 2;

    /// <summary>An integer option with a default, read with the invariant culture; values below <paramref name="minimum"/> are errors.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int minimum = int.MinValue) => new(name)
    {
        Description = description,
        HelpName = "N",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            string text = result.Tokens[0].Value;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            {
                result.AddError($"{name}: '{text}' is not an integer");
            }
            else if (value < minimum)
            {
                result.AddError($"{name} must be at least {minimum}");
            }

            return value;
        },
    };

    /// <summary>
    /// An option of comma-separated integers, e.g. <c>--batches 1,32,128</c>, read with <see cref="Ints"/>. Its value is
    /// the text (checked while parsing), so that the help shows the default as it is typed.
    /// </summary>
    public static Option<string> IntList(string name, string description, params int[] defaults)
    {
        var option = new Option<string>(name)
        {
            Description = description,
            HelpName = "N,N,...",
            DefaultValueFactory = _ => string.Join(',', defaults),
        };
        option.Validators.Add(result =>
        {
            string text = result.GetValueOrDefault<string>();
            if (Array.Find(text.Split(','), part => !int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)) is { } bad)
            {
                result.AddError($"{result.Option.Name}: '{bad}' in '{text}' is not an integer");
            }
        });
        return option;
    }

    /// <summary>The integers of an <see cref="IntList"/> option.</summary>
    public static int[] Ints(ParseResult result, Option<string> option) =>
        [.. result.GetValue(option)!.Split(',').Select(part => int.Parse(part, NumberStyles.Integer, CultureInfo.InvariantCulture))];

    /// <summary>A floating-point option read with the invariant culture (a dot before the decimals, whatever the locale).</summary>
    public static Option<double> Double(string name, string description, double defaultValue) => new(name)
    {
        Description = description,
        HelpName = "X",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            string text = result.Tokens[0].Value;
            if (double.TryParse(text, NumberStyles.Float | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out double value))
            {
                return value;
            }

            result.AddError($"{name}: '{text}' is not a number");
            return 0;
        },
    };

    /// <summary>Parses <paramref name="args"/> and runs the chosen command's action.</summary>
    public static int Invoke(RootCommand root, string[] args)
    {
        var parsed = root.Parse(args);
        int exit = parsed.Invoke(Configuration());
        return parsed.Errors.Count > 0 ? UsageError : exit;
    }

    /// <inheritdoc cref="Invoke"/>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        var parsed = root.Parse(args);
        int exit = await parsed.InvokeAsync(Configuration());
        return parsed.Errors.Count > 0 ? UsageError : exit;
    }

    // As the kiln CLI: an exception from a benchmark is not caught by the parser; it ends the process with its trace.
    private static InvocationConfiguration Configuration() => new() { EnableDefaultExceptionHandler = false };
}
