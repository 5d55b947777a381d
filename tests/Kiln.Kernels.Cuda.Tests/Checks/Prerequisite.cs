namespace Kiln.Tests.Infrastructure;

/// <summary>
/// A missing prerequisite of a test (Azurite, the emulator's g++, NVRTC): a skip with the reason on a developer's
/// machine, a failure under CI=true, where .ci/run installs every one of them, so CI cannot go green on skipped suites.
/// Only a missing GPU (and ../shared, beside every CI clone) is a skip everywhere. Compiled into every test project.
/// </summary>
public static class Prerequisite
{
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Skips the test, or fails it under CI=true, saying what is missing.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Missing(string reason)
    {
        if (InCi)
        {
            Assert.Fail($"CI must provide this test's prerequisite, but it is missing: {reason}");
        }

        Assert.Skip(reason);
    }
}
