namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// A matrix-vector kernel of gemv.cu: its name, threads a block and rows each warp streams. They compute the same
/// thing; they differ in bytes kept in flight, which decides the bandwidth reached at a given matrix shape.
/// </summary>
public sealed record GemvVariant(string Kernel, int Threads, int RowsPerWarp)
{
    /// <summary>One row a warp, four 16-byte loads in flight per lane.</summary>
    public static GemvVariant OneRow { get; } = new("gemv_bf16", 256, 1);

    public static GemvVariant OneRowDeep { get; } = new("gemv_bf16_u8", 256, 1);

    public static GemvVariant TwoRows { get; } = new("gemv_bf16_r2", 256, 2);

    public static GemvVariant FourRows { get; } = new("gemv_bf16_r4", 256, 4);

    public static GemvVariant SmallBlocks { get; } = new("gemv_bf16_b128", 128, 1);

    public static IReadOnlyList<GemvVariant> All { get; } = [OneRow, OneRowDeep, TwoRows, FourRows, SmallBlocks];

    public int RowsPerBlock => Threads / 32 * RowsPerWarp;

    /// <summary>The kernel name's suffix for a compact format: gemv_f16, gemv_q8_r2, gemv_norm_q8, ...</summary>
    public static string Suffix(WeightFormat format) => format == WeightFormat.Q8 ? "q8" : "f16";

    /// <summary>This variant's kernel over f16 or Q8 weights (one, two and four rows a warp are built for them).</summary>
    public string CompactKernel(WeightFormat format) => (Threads, RowsPerWarp, Kernel) switch
    {
        (256, 1, "gemv_bf16") => $"gemv_{Suffix(format)}",
        (256, 2, _) => $"gemv_{Suffix(format)}_r2",
        (256, 4, _) => $"gemv_{Suffix(format)}_r4",
        _ => throw new NotSupportedException($"{Kernel} has no f16 or Q8 form"),
    };

    public uint Blocks(int rows) => (uint)((rows + RowsPerBlock - 1) / RowsPerBlock);

    /// <summary>
    /// The variant the runner uses for a [rows x columns] product at a few tokens. From the H200 sweep at one token
    /// (bench/gpu, --gemv-sweep): four rows a warp reads the 128k-row classifier at 4.24 TB/s (one row: 3.90), two rows
    /// a warp the 16k-row gate/up at 2.76 TB/s (2.65); on the small matrices the plain kernel is as good as any.
    /// </summary>
    public static GemvVariant For(int rows, int columns) => rows switch
    {
        >= 65536 => FourRows,
        >= 8192 => TwoRows,
        _ => OneRow,
    };
}
