using System.Diagnostics;
using Kiln.Kernels.Cuda.Model;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Models;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>
/// Kiln's kernels loaded on one device for one head size: the compiled module and a handle per kernel, with a
/// launcher that passes arguments as 64-bit slots (pointers as they are; ints and floats in the low bytes, which is
/// where a little-endian kernel reads them), so a launch allocates nothing.
/// </summary>
public sealed unsafe class KernelModule : IDisposable
{
    private readonly nint _module;
    private readonly Dictionary<string, nint> _functions = [];
    private readonly int _gqaGroup;

    /// <summary>
    /// Compiles (or loads from the cache) the kernels for a head size and for <paramref name="gqaGroup"/> query heads
    /// served together by one attention block (<see cref="AttentionGroup"/> gives the right value for a model).
    /// Given <paramref name="weightFormats"/> (the formats a model's matrices are stored in), a compile leaves out the
    /// f16 and Q8 products none of them needs, which takes a bf16 model's compile to about a third; the whole module
    /// is still taken from the cache when it is there (<c>kiln kernels</c> builds the whole one).
    /// </summary>
    public KernelModule(CudaDevice device, int headDim, string? cacheDirectory = null, int gqaGroup = 1, IReadOnlyCollection<WeightFormat>? weightFormats = null)
    {
        if (headDim % 32 != 0 || headDim > 256)
        {
            throw new NotSupportedException($"the CUDA kernels take head sizes that are multiples of 32 up to 256, not {headDim}");
        }

        _gqaGroup = gqaGroup;
        device.MakeCurrent();
        var clock = Stopwatch.StartNew();
        string source = KernelCompiler.Source();
        string cache = cacheDirectory ?? KernelCompiler.DefaultCacheDirectory();
        WeightFormats = weightFormats is null ? AllWeightFormats : [.. weightFormats.Append(WeightFormat.Bf16).Distinct().Order()];
        bool cached = true;
        // The whole module serves any weights: taken when kiln kernels (or another runner) left it in the cache.
        if (WeightFormats.Count < AllWeightFormats.Length && KernelCompiler.TryReadCached(source, device.ComputeCapability, Defines(headDim, gqaGroup), cache, out byte[]? cubin))
        {
            WeightFormats = AllWeightFormats;
        }
        else
        {
            cubin = KernelCompiler.Compile(source, device.ComputeCapability, Defines(headDim, gqaGroup, WeightFormats), cache, out cached);
        }

        CompileTime = clock.Elapsed;
        FromCache = cached;
        fixed (byte* image = cubin)
        {
            Driver.Check(Driver.cuModuleLoadData(out _module, image));
        }

        foreach (string name in KernelNames.Where(n => WeightFormats.Contains(GemvVariant.WeightsOf(n))))
        {
            int status = Driver.cuModuleGetFunction(out nint function, _module, name);
            if (status != Driver.Success)
            {
                Driver.cuModuleUnload(_module);
                throw new CudaException($"the compiled kernel module has no kernel {name} (cuModuleGetFunction: {Driver.ErrorName(status)}); defines {string.Join(' ', Defines(headDim, gqaGroup, WeightFormats))}");
            }

            _functions[name] = function;
        }
    }

    public int GqaGroup => _gqaGroup;

    /// <summary>The compile-time constants of a module: part of its cache key, so ahead-of-time builds must use these.</summary>
    internal static string[] Defines(int headDim, int gqaGroup, IReadOnlyCollection<WeightFormat>? weightFormats = null) =>
    [
        $"HEAD_DIM={headDim}", $"GQA_GROUP={gqaGroup}",
        .. weightFormats is null || weightFormats.Contains(WeightFormat.F16) ? [] : new[] { "GEMV_F16_PRODUCTS=0" },
        .. weightFormats is null || weightFormats.Contains(WeightFormat.Q8) ? [] : new[] { "GEMV_Q8_PRODUCTS=0" },
    ];

    private static readonly WeightFormat[] AllWeightFormats = Enum.GetValues<WeightFormat>();

    /// <summary>The weight formats whose products the module has (bf16 always).</summary>
    public IReadOnlyList<WeightFormat> WeightFormats { get; }

    /// <summary>Whether the module has kernel <paramref name="name"/>.</summary>
    public bool Has(string name) => _functions.ContainsKey(name);

    /// <summary>The head size and attention group a runner for <paramref name="config"/> (one rank's, under tensor parallelism) compiles its kernels for.</summary>
    public static (int HeadDim, int GqaGroup) ShapeFor(ModelConfig config) =>
        (config.HeadDim, AttentionGroup(config.HeadCount, config.KvHeadCount, config.HeadDim));

    /// <summary>
    /// Query heads one attention block serves together: the model's whole GQA group when its scores and partial
    /// outputs fit the block's shared memory (group x head size up to 1024 floats, group up to 8), else 1.
    /// </summary>
    public static int AttentionGroup(int queryHeads, int kvHeads, int headDim)
    {
        int group = queryHeads / kvHeads;
        return group <= 8 && group * headDim <= 1024 ? group : 1;
    }

    public static IReadOnlyList<string> KernelNames { get; } =
    [
        "embed_tokens", "embed_tokens_compact", "add_rmsnorm", "rope_write_kv", "paged_attention", "swiglu", "add_bias", "to_bf16",
        "fill_random_bf16", "fill_random_i8", "expand_to_bf16", "argmax_sliced", "sample_rows",
        .. GemvVariant.Products, .. GemvVariant.Products.Select(p => GemvVariant.ForTokens(p, 1)),
    ];

    /// <summary>How long compiling (or reading the cached cubin) took.</summary>
    public TimeSpan CompileTime { get; }

    /// <summary>True when the cubin came from the on-disk cache: nothing was compiled.</summary>
    public bool FromCache { get; }

    public nint this[string name] => _functions[name];

    /// <summary>Launches <paramref name="name"/> on <paramref name="stream"/>; each argument is one 64-bit slot.</summary>
    public void Launch(string name, (uint X, uint Y) grid, uint block, nint stream, ReadOnlySpan<ulong> arguments)
    {
        void** slots = stackalloc void*[arguments.Length];
        fixed (ulong* values = arguments)
        {
            for (int i = 0; i < arguments.Length; i++)
            {
                slots[i] = values + i;
            }

            int status = ProgrammaticLaunch
                ? LaunchProgrammatic(_functions[name], grid, block, stream, slots)
                : Driver.cuLaunchKernel(_functions[name], grid.X, grid.Y, 1, block, 1, 1, 0, stream, slots, null);
            if (status != Driver.Success)
            {
                throw new CudaException($"cuLaunchKernel({name}, grid {grid.X}x{grid.Y}, block {block}) failed: {Driver.ErrorName(status)} ({status})");
            }
        }
    }

    /// <summary>
    /// Launch with programmatic dependent launch (Hopper and later): each kernel may start while the previous one
    /// finishes, waiting in the kernel (griddepcontrol.wait) before it reads that one's output. The matrix-vector
    /// kernel streams its first weights meanwhile. Off by default; the runner turns it on for sm_90 and later.
    /// </summary>
    public bool ProgrammaticLaunch { get; set; }

    private static int LaunchProgrammatic(nint function, (uint X, uint Y) grid, uint block, nint stream, void** slots)
    {
        var attribute = new Driver.LaunchAttribute { Id = Driver.LaunchAttributeProgrammaticStreamSerialization, Value = 1 };
        var config = new Driver.LaunchConfig
        {
            GridX = grid.X,
            GridY = grid.Y,
            GridZ = 1,
            BlockX = block,
            BlockY = 1,
            BlockZ = 1,
            Stream = stream,
            Attributes = &attribute,
            AttributeCount = 1,
        };
        return Driver.cuLaunchKernelEx(&config, function, slots, null);
    }

    public static ulong Int(int value) => (uint)value;

    public static ulong Float(float value) => BitConverter.SingleToUInt32Bits(value);

    public void Dispose() => Driver.cuModuleUnload(_module);
}
