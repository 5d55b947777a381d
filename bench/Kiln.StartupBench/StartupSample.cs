namespace Kiln.StartupBench;

/// <summary>
/// One start of the app, in seconds from the process start: the first HTTP answer of any status (the host is up), the
/// model's load logged as begun and as done, /api/ready 200, the first streamed token; the CPU seconds the process
/// had used when ready and at the first token; resident memory in bytes.
/// </summary>
internal sealed record StartupSample(
    double FirstAnswer,
    double? LoadBegun,
    double? LoadDone,
    double Ready,
    double FirstToken,
    double CpuAtReady,
    double CpuAtFirstToken,
    long ResidentAtReady,
    long ResidentAfterCall);
