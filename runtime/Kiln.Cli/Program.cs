using System.CommandLine;
using Kiln.Cli.Commands;
using Kiln.Kernels.Cuda.Native;

var root = new RootCommand("kiln: run LLMs on Kiln's warm-resident engine. With no --model, a built-in demo model (random weights, GPT-2 vocabulary) is used.")
{
    GenerateCommand.Create(),
    LogitsCommand.Create(),
    TokenizeCommand.Create(),
    DetokenizeCommand.Create(),
    KernelsCommand.Create(),
};

try
{
    var parsed = root.Parse(args);
    if (parsed.Errors.Count > 0)
    {
        // One line per mistake, naming the option; `kiln <command> --help` lists them all.
        foreach (var error in parsed.Errors)
        {
            await Console.Error.WriteLineAsync($"kiln: error: {error.Message}");
        }

        return 1;
    }

    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (OperationCanceledException)
{
    return 130;
}
catch (Exception e) when (e is IOException or FormatException or ArgumentException or InvalidOperationException or UnauthorizedAccessException
    or CudaUnavailableException)
{
    // Bad input (a malformed model, a missing file, an out-of-range option, --device cuda without a GPU) is a
    // message, not a stack trace.
    await Console.Error.WriteLineAsync($"kiln: error: {e.Message}");
    return 1;
}
