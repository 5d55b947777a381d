namespace Kiln.Kernels.Cuda.Tests;

// The checks on the CPU emulator (kernels/emulator), built here with g++: they verify the kernels' arithmetic,
// barriers and shuffles, the runner's graphs and the NCCL group, not speed. Without g++ each skips and says why.

public sealed class KernelTests_OnEmulator_NeedsGxx : KernelChecks;

/// <summary>Shares emulated device 1 with <see cref="RankFailureTests_OnEmulator_NeedsGxx"/>, which makes it fail: never at the same time.</summary>
[Collection(EmulatedDeviceOne.Name)]
public sealed class ForwardTests_OnEmulator_NeedsGxx : ForwardChecks;

public sealed class SamplingTests_OnEmulator_NeedsGxx : SamplingChecks;

public sealed class FusedGemvTests_OnEmulator_NeedsGxx : FusedGemvChecks;

public sealed class GemvFormTests_OnEmulator_NeedsGxx : GemvFormChecks;

public sealed class AheadOfTimeTests_OnEmulator_NeedsGxx : AheadOfTimeChecks;

/// <summary>Its tensor-parallel check uses emulated device 1 too.</summary>
[Collection(EmulatedDeviceOne.Name)]
public sealed class TuningTests_OnEmulator_NeedsGxx : TuningChecks;

/// <summary>The tests that use emulated device 1 (tensor-parallel rank 1), run one at a time.</summary>
internal static class EmulatedDeviceOne
{
    public const string Name = "emulated device 1";
}
