using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.Tests.Functions;

/// <summary>
/// The built app (<c>dotnet functions/Kiln.Functions/bin/CONFIG/net10.0/Kiln.Functions.dll</c>) as a real process in
/// standalone mode on a free loopback port, as a pod runs it: settings on the command line, stopped with SIGTERM.
/// </summary>
public sealed partial class AppProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The address is read from the host's "Now listening on" line, an Information log.</summary>
    private static readonly string[] FixedArguments = ["--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Information", "--Logging:Console:FormatterName=simple"];
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private AppProcess(Process process) => _process = process;

    /// <summary>A client whose base address is the route prefix: <c>http://127.0.0.1:PORT/api/</c>.</summary>
    public HttpClient Http { get; private set; } = null!;

    public int Id => _process.Id;

    /// <summary>What the app printed, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>The built app (<c>dotnet Kiln.Functions.dll</c> in its directory) with <paramref name="arguments"/>, output captured.</summary>
    private static ProcessStartInfo StartInfo(string dir, IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet && File.Exists(dotnet) ? dotnet : "dotnet")
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(dir, "Kiln.Functions.dll"));
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        return psi;
    }

    /// <summary>Starts the app and waits for its address; skips where the app is not built.</summary>
    public static async Task<AppProcess> StartAsync(IEnumerable<string> settings, CancellationToken cancellationToken)
    {
        string? dir = StandInFunctionsHost.FindWorkerDirectory();
        if (dir is null)
        {
            Assert.Skip("the app is not built (functions/Kiln.Functions/bin/<config>/net10.0): build the solution first");
        }

        var psi = StartInfo(dir, FixedArguments.Concat(settings.Select(s => "--" + s)));

        psi.Environment["ASPNETCORE_URLS"] = null;
        psi.Environment["Functions__Worker__HostEndpoint"] = null; // standalone, whatever the test runner's environment says

        var app = new AppProcess(Process.Start(psi) ?? throw new InvalidOperationException("could not start the app"));
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (app._output)
            {
                app._output.AppendLine(line);
            }

            if (ListeningLine().Match(line) is { Success: true } match)
            {
                listening.TrySetResult(new Uri(match.Groups[1].Value.TrimEnd('/') + "/"));
            }
        }

        app._process.OutputDataReceived += (_, e) => OnLine(e.Data);
        app._process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        app._process.BeginOutputReadLine();
        app._process.BeginErrorReadLine();
        try
        {
            var root = await listening.Task.WaitAsync(StartTimeout, cancellationToken);
            app.Http = new HttpClient { BaseAddress = new Uri(root, "api/"), Timeout = TimeSpan.FromMinutes(3) };
            return app;
        }
        catch (TimeoutException)
        {
            await app.DisposeAsync();
            throw new TimeoutException($"the app printed no address within {StartTimeout}:\n{app.Output}");
        }
    }

    /// <summary>
    /// Runs the built app with <paramref name="arguments"/> as they are (no fixed ones) until it exits by itself, for
    /// starts that must fail: its exit code and everything it printed. Skips where the app is not built.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        string? dir = StandInFunctionsHost.FindWorkerDirectory();
        if (dir is null)
        {
            Assert.Skip("the app is not built (functions/Kiln.Functions/bin/<config>/net10.0): build the solution first");
        }

        var psi = StartInfo(dir, arguments);

        psi.Environment["ASPNETCORE_URLS"] = null;
        psi.Environment["Functions__Worker__HostEndpoint"] = null;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the app");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the app did not exit within {timeout}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>SIGTERM, as the kubelet sends it when a pod is deleted (scale-down).</summary>
    public async Task TerminateAsync(CancellationToken cancellationToken)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("could not run kill");
        await kill.WaitForExitAsync(cancellationToken);
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>The exit code, or a failure naming the timeout and what the app printed.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _process.WaitForExitAsync(cancellationToken).WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the app did not exit within {timeout}:\n{Output}");
        }

        _process.WaitForExit(); // the output's end: every line read
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningLine();
}
