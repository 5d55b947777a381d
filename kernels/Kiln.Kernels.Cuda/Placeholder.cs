namespace Kiln.Kernels.Cuda; internal static class Placeholder { }
