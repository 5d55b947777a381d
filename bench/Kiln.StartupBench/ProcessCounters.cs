using System.Globalization;

namespace Kiln.StartupBench;

/// <summary>What Linux counts for a process: its resident memory (VmRSS: anonymous and file-backed pages) and CPU time.</summary>
internal static class ProcessCounters
{
    /// <summary>
    /// User plus system CPU seconds the process has used, or -1 off Linux: on a shared machine a start's CPU time moves
    /// far less than its wall time, so it shows what a change (ReadyToRun, say) saves.
    /// </summary>
    public static double CpuSeconds(int pid)
    {
        string path = $"/proc/{pid}/stat";
        if (!File.Exists(path))
        {
            return -1;
        }

        // Fields 14 and 15 (utime, stime) in clock ticks, counted after the command name's closing parenthesis.
        string stat = File.ReadAllText(path);
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        const double TicksPerSecond = 100; // USER_HZ, 100 on every Linux ABI .NET runs on
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }

    public static long ResidentBytes(int pid)
    {
        string path = $"/proc/{pid}/status";
        if (!File.Exists(path))
        {
            return -1; // not Linux: the table shows no figure
        }

        string line = File.ReadLines(path).First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
