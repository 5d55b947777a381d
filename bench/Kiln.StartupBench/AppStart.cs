using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Kiln.StartupBench;

/// <summary>
/// Starts the published app as a pod does (<c>dotnet Kiln.Functions.dll</c>, standalone on Kestrel) and times it:
/// polls /api/ready every 10 ms from the process start, then streams one chat completion and stops the app.
/// </summary>
internal static class AppStart
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    public static async Task<StartupSample> RunAsync(string appDirectory, string? modelPath, StartupOptions options)
    {
        int port = FreePort();
        var psi = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = appDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(appDirectory, "Kiln.Functions.dll"));
        psi.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        if (modelPath is not null)
        {
            psi.ArgumentList.Add($"--Kiln:Model={modelPath}");
        }

        foreach (string setting in options.AppSettings)
        {
            psi.ArgumentList.Add("--" + setting);
        }

        psi.Environment["ASPNETCORE_URLS"] = null;
        psi.Environment["Functions__Worker__HostEndpoint"] = null; // standalone, whatever this shell says
        foreach (string variable in options.Environment)
        {
            string[] parts = variable.Split('=', 2);
            psi.Environment[parts[0]] = parts.Length > 1 ? parts[1] : string.Empty;
        }

        using var http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(1) }) { BaseAddress = new Uri($"http://127.0.0.1:{port}/api/"), Timeout = Limit };
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the app");
        var log = new AppLog(clock);
        process.OutputDataReceived += (_, e) => log.Line(e.Data);
        process.ErrorDataReceived += (_, e) => log.Line(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            double? firstAnswer = null;
            string? modelId = null;
            while (modelId is null)
            {
                if (process.HasExited || clock.Elapsed > Limit)
                {
                    throw new InvalidOperationException($"the app was not ready within {clock.Elapsed.TotalSeconds:F0} s (exit: {(process.HasExited ? process.ExitCode : "none")}):\n{log.Text}");
                }

                try
                {
                    using var response = await http.GetAsync(new Uri("ready", UriKind.Relative));
                    firstAnswer ??= clock.Elapsed.TotalSeconds;
                    if (response.IsSuccessStatusCode)
                    {
                        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                        modelId = body.RootElement.GetProperty("model").GetString() ?? throw new InvalidOperationException("ready names no model");
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                    // not listening yet
                }

                await Task.Delay(Poll);
            }

            double ready = clock.Elapsed.TotalSeconds;
            long residentAtReady = ProcessCounters.ResidentBytes(process.Id);
            double cpuAtReady = ProcessCounters.CpuSeconds(process.Id);
            var (firstToken, cpuAtFirstToken) = await FirstTokenAsync(http, modelId, options.MaxTokens, clock, process.Id);
            long residentAfter = ProcessCounters.ResidentBytes(process.Id);
            return new StartupSample(firstAnswer!.Value, log.LoadBegun, log.LoadDone, ready, firstToken, cpuAtReady, cpuAtFirstToken, residentAtReady, residentAfter);
        }
        finally
        {
            await StopAsync(process);
        }
    }

    /// <summary>Streams a chat completion to its end; the time of the first chunk that carries text, and the app's CPU seconds then.</summary>
    private static async Task<(double Seconds, double Cpu)> FirstTokenAsync(HttpClient http, string modelId, int maxTokens, Stopwatch clock, int pid)
    {
        var call = new
        {
            model = modelId,
            messages = new[] { new { role = "user", content = "Hello, how are you today?" } },
            max_tokens = maxTokens,
            temperature = 0,
            stream = true,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("v1/chat/completions", UriKind.Relative)) { Content = JsonContent.Create(call) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"the chat completion answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        double? first = null;
        double cpu = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (first is null && line.StartsWith("data: {", StringComparison.Ordinal) && HasText(line["data: ".Length..]))
            {
                first = clock.Elapsed.TotalSeconds;
                cpu = ProcessCounters.CpuSeconds(pid);
            }
        }

        return first is { } seconds ? (seconds, cpu) : throw new InvalidOperationException("the stream carried no token");
    }

    /// <summary>A chunk whose delta has text: the first chunk names only the role, with empty content.</summary>
    private static bool HasText(string json)
    {
        using var chunk = JsonDocument.Parse(json);
        return chunk.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices
            && choices.EnumerateArray().Any(c => c.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                && content.GetString() is { Length: > 0 });
    }

    /// <summary>SIGTERM as the kubelet sends it (the app drains, nothing is running), then a kill if it lingers.</summary>
    private static async Task StopAsync(Process process)
    {
        if (process.HasExited)
        {
            return;
        }

        if (!OperatingSystem.IsWindows())
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
            await (kill?.WaitForExitAsync() ?? Task.CompletedTask);
        }

        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await process.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
