namespace Kiln.Kernels.Cuda.Tests;

// The checks on the CPU emulator (kernels/emulator), built here with g++: they verify the kernels' arithmetic,
// barriers and shuffles, the runner's graphs and the NCCL group, not speed. Without g++ each skips and says why.

public sealed class KernelTests_OnEmulator_NeedsGxx : KernelChecks;

public sealed class ForwardTests_OnEmulator_NeedsGxx : ForwardChecks;

public sealed class SamplingTests_OnEmulator_NeedsGxx : SamplingChecks;

public sealed class FusedGemvTests_OnEmulator_NeedsGxx : FusedGemvChecks;
