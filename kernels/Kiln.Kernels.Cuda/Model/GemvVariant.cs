namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// A matrix-vector kernel of gemv.cu: its name, threads a block and rows each warp streams. They compute the same
/// thing; they differ in bytes kept in flight, which decides the bandwidth reached at a given matrix shape.
/// </summary>
public sealed record GemvVariant(string Kernel, int Threads, int RowsPerWarp)
{
    public static IReadOnlyList<GemvVariant> All { get; } =
    [
        new("gemv_bf16", 256, 1),
        new("gemv_bf16_u8", 256, 1),
        new("gemv_bf16_r2", 256, 2),
        new("gemv_bf16_r4", 256, 4),
        new("gemv_bf16_b128", 128, 1),
    ];

    public int RowsPerBlock => Threads / 32 * RowsPerWarp;

    public uint Blocks(int rows) => (uint)((rows + RowsPerBlock - 1) / RowsPerBlock);

    /// <summary>
    /// The variant the runner uses for a [rows x columns] product at a few tokens. From the H200 sweep at one token
    /// (bench/gpu, --gemv-sweep): four rows a warp reads the 128k-row classifier at 4.24 TB/s (one row: 3.90), two rows
    /// a warp the 16k-row gate/up at 2.76 TB/s (2.65); on the small matrices the plain kernel is as good as any.
    /// </summary>
    public static GemvVariant For(int rows, int columns) => rows switch
    {
        >= 65536 => All[3],
        >= 8192 => All[2],
        _ => All[0],
    };
}
