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

    // Static fields initialise in the order written: the name tables come before the lists made from them.
    /// <summary>The fused decode-layer products (bf16 names; each also has an f16 and a Q8 form).</summary>
    private static readonly string[] FusedKernels = ["gemv_norm_rope", "gemv_add", "gemv_norm_swiglu"];

    /// <summary>Each fused product with 8 loads in flight per row instead of 4 (NAME_u8): the same sums, in the same order.</summary>
    private static readonly string[] DeepFusedKernels = [.. FusedKernels.Select(k => k + "_u8")];

    private static readonly Dictionary<string, string[]> FusedAlternatives =
        FusedKernels.Zip(DeepFusedKernels).ToDictionary(p => p.First, p => new[] { p.First, p.Second });

    /// <summary>
    /// The f16 and Q8 forms gemv.cu builds (GEMV_COMPACT_FORMAT, GEMV_ROPE_KERNEL): the plain products with one, two
    /// and four rows a warp (gemv_bf16_r2 -> gemv_q8_r2) and every fused one (gemv_add -> gemv_add_q8, gemv_add_u8 -> gemv_add_u8_q8).
    /// </summary>
    private static readonly Dictionary<(string Kernel, WeightFormat Format), string> CompactNames =
        (from format in new[] { WeightFormat.F16, WeightFormat.Q8 }
         from kernel in new[] { OneRow.Kernel, TwoRows.Kernel, FourRows.Kernel }.Concat(FusedKernels).Concat(DeepFusedKernels)
         select (kernel, format))
        .ToDictionary(
            key => key,
            key => key.kernel.StartsWith("gemv_bf16", StringComparison.Ordinal)
                ? "gemv_" + Suffix(key.format) + key.kernel["gemv_bf16".Length..]
                : $"{key.kernel}_{Suffix(key.format)}");

    /// <summary>
    /// Every product gemv.cu builds: the plain bf16 variants, the fused ones, and both in f16 and Q8. Each is also built
    /// for exactly one token (<see cref="ForTokens"/>).
    /// </summary>
    public static IReadOnlyList<string> Products { get; } = [.. All.Select(v => v.Kernel), .. FusedKernels, .. DeepFusedKernels, .. CompactNames.Values];

    /// <summary>The plain variants built over f16 and Q8 weights too.</summary>
    private static readonly GemvVariant[] CompactVariants = [OneRow, TwoRows, FourRows];

    /// <summary>
    /// The plain variants that can serve a matrix in <paramref name="format"/>: interchangeable, each row's sums taken
    /// in the same order, so they give the same bits and differ only in speed (see <see cref="GemvChoices"/>).
    /// </summary>
    public static IReadOnlyList<GemvVariant> Alternatives(WeightFormat format) => format == WeightFormat.Bf16 ? All : CompactVariants;

    /// <summary>The kernels that can run fused product <paramref name="fused"/> (a bf16 name): itself, then its _u8 form.</summary>
    public static IReadOnlyList<string> Alternatives(string fused) =>
        FusedAlternatives.TryGetValue(fused, out string[]? names) ? names : throw new NotSupportedException($"{fused} is not a fused product");

    /// <summary>The most alternatives any product has: the steps a tuning round runs.</summary>
    public static int MostAlternatives => Math.Max(All.Count, FusedAlternatives.Values.Max(n => n.Length));

    /// <summary>
    /// The product to launch for a step of <paramref name="tokens"/> tokens: at one token its _t1 form, whose
    /// accumulators are one token wide (the registers freed keep more weight loads in flight); else the kernel itself.
    /// </summary>
    public static string ForTokens(string kernel, int tokens) =>
        tokens != 1 ? kernel
        : SingleTokenNames.TryGetValue(kernel, out string? name) ? name
        : throw new NotSupportedException($"{kernel} is not one of gemv.cu's products");

    /// <summary>
    /// The weight format kernel <paramref name="name"/> reads: f16 or Q8 for those products and their one-token forms,
    /// bf16 for every other kernel (a module built without a format's products has none of its names).
    /// </summary>
    public static WeightFormat WeightsOf(string name) =>
        CompactFormats.TryGetValue(ProductOf(name), out var format) ? format : WeightFormat.Bf16;

    /// <summary>The product a kernel name is a form of: NAME for its one-token form NAME_t1; any other name as it is.</summary>
    public static string ProductOf(string name) =>
        name.EndsWith(SingleTokenSuffix, StringComparison.Ordinal) ? name[..^SingleTokenSuffix.Length] : name;

    private const string SingleTokenSuffix = "_t1";

    private static readonly Dictionary<string, WeightFormat> CompactFormats = CompactNames.ToDictionary(p => p.Value, p => p.Key.Format);

    private static readonly Dictionary<string, string> SingleTokenNames = Products.ToDictionary(p => p, p => p + SingleTokenSuffix);

    /// <summary>The kernel name's suffix for a compact format: gemv_f16, gemv_q8_r2, gemv_norm_rope_q8, ...</summary>
    public static string Suffix(WeightFormat format) => format == WeightFormat.Q8 ? "q8" : "f16";

    /// <summary>This variant's kernel over f16 or Q8 weights (one, two and four rows a warp are built for them).</summary>
    public string CompactKernel(WeightFormat format) => ForFormat(Kernel, format);

    /// <summary>
    /// The kernel that does what the bf16 kernel <paramref name="bf16Kernel"/> does over weights in <paramref name="format"/>:
    /// looked up in a table made once, so a launch builds no string.
    /// </summary>
    public static string ForFormat(string bf16Kernel, WeightFormat format) =>
        format == WeightFormat.Bf16 ? bf16Kernel
        : CompactNames.TryGetValue((bf16Kernel, format), out string? name) ? name
        : throw new NotSupportedException($"{bf16Kernel} has no f16 or Q8 form");

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
