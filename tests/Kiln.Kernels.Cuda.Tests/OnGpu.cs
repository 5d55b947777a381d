namespace Kiln.Kernels.Cuda.Tests;

// The checks on a real NVIDIA GPU. Where there is none (every CI machine) each skips and says why; the same checks
// run on the CPU emulator in Kiln.Kernels.Cuda.EmulatorTests.

public sealed class KernelTests_NeedsGpu : KernelChecks;

public sealed class ForwardTests_NeedsGpu : ForwardChecks;

public sealed class SamplingTests_NeedsGpu : SamplingChecks;

public sealed class FusedGemvTests_NeedsGpu : FusedGemvChecks;

public sealed class GemvFormTests_NeedsGpu : GemvFormChecks;

public sealed class AheadOfTimeTests_NeedsGpu : AheadOfTimeChecks;

public sealed class TuningTests_NeedsGpu : TuningChecks;
