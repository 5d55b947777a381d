using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.LocalCluster;

/// <summary>Azurite cannot run here (no node or npm, or the install failed): tests that need it skip with this reason.</summary>
public sealed class AzuriteUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A private Azurite (the Azure Storage emulator) on free loopback ports, in memory, killed on dispose. Installed once
/// per clone with npm into the git-ignored <c>.tools/azurite</c> (a file lock keeps parallel test processes from
/// installing twice). No xunit dependency, so benchmarks can link this file too.
/// </summary>
public sealed partial class AzuriteProcess : IAsyncDisposable
{
    public const string Version = "3.37.0";
    public const string AccountName = "devstoreaccount1";

    /// <summary>The emulator's well-known development key (public, in every Azure Storage doc).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process _process;

    private AzuriteProcess(Process process, int blobPort, int queuePort, int tablePort)
    {
        _process = process;
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
    }

    public int BlobPort { get; }
    public int QueuePort { get; }
    public int TablePort { get; }

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{BlobPort}/{AccountName};QueueEndpoint=http://127.0.0.1:{QueuePort}/{AccountName};" +
        $"TableEndpoint=http://127.0.0.1:{TablePort}/{AccountName};";

    public static async Task<AzuriteProcess> StartAsync(CancellationToken cancellationToken = default)
    {
        var (file, prefixArgs) = await LocateAsync(cancellationToken);
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in prefixArgs)
        {
            psi.ArgumentList.Add(a);
        }

        // Port 0: Azurite binds ports the OS picks and prints them. Ports found free here and handed to it would stay
        // free only until it binds them, and another test's server listening on port 0 meanwhile could take one
        // (seen once in ten runs: the queue client reached an HTTP/2-only Kestrel).
        foreach (var a in new[]
        {
            "--silent", "--inMemoryPersistence", "--skipApiVersionCheck",
            "--blobHost", "127.0.0.1", "--blobPort", "0",
            "--queueHost", "127.0.0.1", "--queuePort", "0",
            "--tableHost", "127.0.0.1", "--tablePort", "0",
        })
        {
            psi.ArgumentList.Add(a);
        }

        var process = Process.Start(psi) ?? throw new AzuriteUnavailableException($"could not start {file}");
        var output = new StringBuilder();
        var ports = new Dictionary<string, int>();
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            lock (output)
            {
                output.AppendLine(line);
                if (line is not null && ListeningLine().Match(line) is { Success: true } match)
                {
                    ports[match.Groups["service"].Value] = int.Parse(match.Groups["port"].Value, CultureInfo.InvariantCulture);
                    if (ports.Count == 3)
                    {
                        listening.TrySetResult();
                    }
                }
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var exited = process.WaitForExitAsync(cancellationToken);
            if (await Task.WhenAny(listening.Task, exited).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken) != listening.Task)
            {
                throw new InvalidOperationException($"it exited with code {process.ExitCode}");
            }

            lock (output)
            {
                if (ports.ContainsValue(0))
                {
                    throw new InvalidOperationException("it reported port 0, not the ports it bound (an Azurite older than 3.37.0 on PATH?)");
                }
            }
        }
        catch (Exception e)
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            if (e is OperationCanceledException)
            {
                throw;
            }

            string log;
            lock (output)
            {
                log = output.ToString();
            }

            throw new InvalidOperationException($"Azurite did not start listening ({e.Message}): {log}", e);
        }

        return new AzuriteProcess(process, ports["Blob"], ports["Queue"], ports["Table"]);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        catch (TimeoutException)
        {
            // it was killed; not waiting longer
        }

        _process.Dispose();
    }

    /// <summary>The command that runs Azurite: an azurite on PATH, else node with the copy installed under .tools/azurite.</summary>
    private static async Task<(string File, string[] Args)> LocateAsync(CancellationToken ct)
    {
        var onPath = FindOnPath("azurite");
        if (onPath is not null)
        {
            return (onPath, []);
        }

        var node = FindOnPath("node") ?? throw new AzuriteUnavailableException("Azurite is not installed and 'node' is not on PATH (install Node.js and npm to run the storage tests)");
        var npm = FindOnPath("npm") ?? throw new AzuriteUnavailableException("Azurite is not installed and 'npm' is not on PATH (install npm to run the storage tests)");
        var prefix = Path.Combine(RepoRoot(), ".tools", "azurite");
        var script = Path.Combine(prefix, "node_modules", "azurite", "dist", "src", "azurite.js");
        // The marker is written after npm finishes: the script exists long before the install is complete.
        var marker = Path.Combine(prefix, $".installed-{Version}");
        if (!File.Exists(marker))
        {
            Directory.CreateDirectory(prefix);
            await using var lockFile = await LockAsync(Path.Combine(prefix, ".install.lock"), ct);
            if (!File.Exists(marker))
            {
                await RunAsync(npm, ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, $"azurite@{Version}"], TimeSpan.FromMinutes(5), ct);
                await File.WriteAllTextAsync(marker, DateTime.UtcNow.ToString("O"), ct);
            }
        }

        return File.Exists(script) ? (node, [script]) : throw new AzuriteUnavailableException($"npm install of azurite@{Version} did not produce {script}");
    }

    private static async Task RunAsync(string file, string[] args, TimeSpan timeout, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new AzuriteUnavailableException($"{file} {string.Join(' ', args)} took longer than {timeout}");
        }

        if (p.ExitCode != 0)
        {
            throw new AzuriteUnavailableException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {await stderr}{await stdout}");
        }
    }

    // An exclusive open is the lock: released when the stream closes, or by the OS if the process dies.
    private static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddMinutes(6);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250, ct);
            }
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    /// <summary>The repository root: the first directory above the binaries that holds Functions.sln.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Functions.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no Functions.sln above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"Azurite (?<service>Blob|Queue|Table) service is successfully listening at http://[^:]+:(?<port>\d+)")]
    private static partial Regex ListeningLine();
}
