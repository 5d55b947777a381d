using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Kernels.Cuda.Native;

/// <summary>
/// --gemv-sweep: every matrix-vector variant on the decode step's matrix shapes, 50 launches each between two CUDA
/// events, reported as bytes of weights read per second. The runner's <see cref="GemvVariant.For"/> follows it.
/// </summary>
internal static class GemvSweep
{
    public static void Run(CudaDevice device, KernelModule kernels, nint stream, (int Rows, int Columns)[] shapes, int tokens)
    {
        device.MakeCurrent();
        Console.WriteLine($"matrix-vector variants at {tokens} token(s), GB/s of weights (50 launches each):");
        // At one token, each variant also in its one-token form (NAME_t1), which the runner launches at batch 1.
        var kernelsToTime = GemvVariant.All.SelectMany(v => tokens == 1 ? new[] { (v, v.Kernel), (v, GemvVariant.ForTokens(v.Kernel, 1)) } : [(v, v.Kernel)]).ToArray();
        Console.WriteLine($"  {"shape",-14}" + string.Concat(kernelsToTime.Select(k => $"{k.Item2,18}")));
        Driver.Check(Driver.cuEventCreate(out nint start, Driver.EventDefault));
        Driver.Check(Driver.cuEventCreate(out nint end, Driver.EventDefault));
        foreach (var (rows, columns) in shapes)
        {
            using var w = new DeviceBuffer((long)rows * columns * 2);
            using var x = new DeviceBuffer((long)tokens * columns * 2);
            using var y = new DeviceBuffer((long)tokens * rows * 4);
            kernels.Launch("fill_random_bf16", (1024, 1), 256, stream, [w.Pointer, (ulong)rows * (ulong)columns, 5, KernelModule.Float(0.02f)]);
            kernels.Launch("fill_random_bf16", (64, 1), 256, stream, [x.Pointer, (ulong)(tokens * columns), 6, KernelModule.Float(1f)]);
            var line = $"  {rows + "x" + columns,-14}";
            foreach (var (variant, kernel) in kernelsToTime)
            {
                ulong[] arguments = [y.Pointer, w.Pointer, x.Pointer, 0, KernelModule.Int(rows), KernelModule.Int(columns), KernelModule.Int(tokens)];
                for (int i = 0; i < 3; i++)
                {
                    kernels.Launch(kernel, (variant.Blocks(rows), 1), (uint)variant.Threads, stream, arguments);
                }

                Driver.Check(Driver.cuEventRecord(start, stream));
                const int Launches = 50;
                for (int i = 0; i < Launches; i++)
                {
                    kernels.Launch(kernel, (variant.Blocks(rows), 1), (uint)variant.Threads, stream, arguments);
                }

                Driver.Check(Driver.cuEventRecord(end, stream));
                Driver.Check(Driver.cuEventSynchronize(end));
                float ms = Driver.ElapsedMilliseconds(start, end) / Launches;
                line += $"{(double)rows * columns * 2 / (ms * 1e-3) / 1e9,13:F0} GB/s";
            }

            Console.WriteLine(line);
        }

        Driver.Check(Driver.cuEventDestroy(start));
        Driver.Check(Driver.cuEventDestroy(end));
    }
}
