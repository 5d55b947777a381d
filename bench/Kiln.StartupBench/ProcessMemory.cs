using System.Globalization;

namespace Kiln.StartupBench;

/// <summary>A process's resident memory as Linux counts it (VmRSS: anonymous and file-backed pages).</summary>
internal static class ProcessMemory
{
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
