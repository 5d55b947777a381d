using System.Diagnostics;
using System.Globalization;
using Kiln.Bench.Common;
using Kiln.StartupBench;

// Start-up of the function app as scale-to-zero sees it: a published app started cold as a process, timed to ready
// and to its first token. Each figure is the median of the runs, with min-max.
return await BenchCommandLine.InvokeAsync(StartupOptions.CreateCommand(RunAsync), args);

static async Task<int> RunAsync(StartupOptions options)
{
    string root = RepositoryRoot();
    string results = Path.Combine(root, "bench", "results");
    string app = options.AppDirectory is { } given ? Path.GetFullPath(given) : Path.Combine(results, "startup", "app");
    Directory.CreateDirectory(results);
    Console.WriteLine($"CPU: {CpuName()} ({Environment.ProcessorCount} cores), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
    if (!options.NoPublish && options.AppDirectory is null)
    {
        Publish(root, app, options.PublishArguments);
    }

    var models = new List<(string Name, string? Path)>();
    foreach (string name in options.Models)
    {
        models.Add(name.ToUpperInvariant() switch
        {
            "DEMO" => ("demo (14M, built in memory)", null),
            "1B" => ($"1b ({LargeModel.Describe()})", LargeModel.Prepare(Path.Combine(results, "models"))),
            _ => throw new ArgumentException($"unknown model '{name}' (demo, 1b)"),
        });
    }

    var table = new List<(string Model, IReadOnlyList<StartupSample> Runs)>();
    foreach (var (name, path) in models)
    {
        var runs = new List<StartupSample>();
        for (int i = 0; i < options.Runs; i++)
        {
            var sample = await AppStart.RunAsync(app, path, options);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name} run {i + 1}: ready {sample.Ready:F2} s, first token {sample.FirstToken:F2} s, CPU {sample.CpuAtReady:F2} / {sample.CpuAtFirstToken:F2} s, RSS {sample.ResidentAtReady / 1e6:F0} / {sample.ResidentAfterCall / 1e6:F0} MB"));
            runs.Add(sample);
        }

        table.Add((name, runs));
    }

    string settings = string.Join(' ', options.AppSettings.Concat(options.Environment).Concat(options.PublishArguments).Concat(options.AppDirectory is { } d ? [$"app {d}"] : []));
    string text = $"CPU: {CpuName()} ({Environment.ProcessorCount} cores); {options.Runs} runs each, max_tokens {options.MaxTokens}" +
        (settings.Length > 0 ? $"; {settings}" : string.Empty) + Environment.NewLine + Environment.NewLine + StartupTable.Format(table);
    Console.WriteLine();
    Console.WriteLine(text);
    File.WriteAllText(Path.Combine(results, "startup.md"), text);
    return 0;
}

static void Publish(string root, string output, IReadOnlyList<string> extra)
{
    var started = Stopwatch.StartNew();
    if (Directory.Exists(output))
    {
        Directory.Delete(output, recursive: true); // no file of an earlier publish (other settings) is left to run
    }

    var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = root, UseShellExecute = false };
    foreach (string a in new[] { "publish", Path.Combine("functions", "Kiln.Functions"), "-c", "Release", "-o", output, "-v", "quiet", "-nologo" }.Concat(extra))
    {
        psi.ArgumentList.Add(a);
    }

    using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not run dotnet publish");
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"dotnet publish failed ({process.ExitCode})");
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"published the app to {output} in {started.Elapsed.TotalSeconds:F0} s"));
}

static string RepositoryRoot()
{
    foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Functions.sln")))
            {
                return d.FullName;
            }
        }
    }

    throw new InvalidOperationException("run the bench inside the repository (no Functions.sln found above here)");
}

static string CpuName()
{
    var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
    return line?.Split(':', 2)[1].Trim() ?? "unknown";
}
