using System.Diagnostics;
using System.Reflection;
using Kiln.LocalCluster;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Cli;

/// <summary>
/// <c>kiln</c> as a .NET tool, as the README installs it: packed from the repository, installed into a tool path from
/// that package alone (no other feed, so nothing of the same name elsewhere can stand in), and run once on the demo model.
/// </summary>
public sealed class ToolPackageTests
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task PackedTool_InstallsFromTheRepository_AndGenerates()
    {
        using var directory = new TempDirectory();
        string packages = directory.File("nupkg");
        string tools = directory.File("tools");
        string configuration = typeof(ToolPackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        string project = Path.Combine(AzuriteProcess.RepoRoot(), "runtime", "Kiln.Cli", "Kiln.Cli.csproj");

        // The tests' build built the tool in this configuration: pack that build, so nothing is rebuilt under the other tests.
        await RunAsync(Dotnet(), ["pack", project, "-c", configuration, "--no-build", "-o", packages, "-nologo"]);
        File.WriteAllText(directory.File("nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="kiln" value="{packages}" />
              </packageSources>
            </configuration>
            """);
        await RunAsync(Dotnet(), ["tool", "install", "--tool-path", tools, "--configfile", directory.File("nuget.config"), "Kiln.Cli"]);

        string kiln = Path.Combine(tools, OperatingSystem.IsWindows() ? "kiln.exe" : "kiln");
        Assert.True(File.Exists(kiln), $"the install put no kiln command in {tools}");
        string output = await RunAsync(kiln, ["generate", "--prompt", "Hello", "--max-tokens", "3", "--temperature", "0"]);

        Assert.StartsWith("Hello", output, StringComparison.Ordinal);
        Assert.True(output.TrimEnd().Length > "Hello".Length, $"kiln printed the prompt but no continuation: '{output}'");
    }

    private static string Dotnet() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>Runs a command to its end; its stdout, or a failure with everything it printed.</summary>
    private static async Task<string> RunAsync(string fileName, string[] arguments)
    {
        var psi = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            psi.ArgumentList.Add(argument);
        }

        // The installed command's launcher finds the runtime through DOTNET_ROOT where dotnet is not where it looks.
        if (Dotnet() is { } host && Path.IsPathRooted(host))
        {
            psi.Environment["DOTNET_ROOT"] = Path.GetDirectoryName(new FileInfo(host).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? host);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(StepTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        string output = await stdout;
        Assert.True(process.ExitCode == 0, $"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} exited {process.ExitCode}:\n{output}\n{await stderr}");
        return output;
    }
}
