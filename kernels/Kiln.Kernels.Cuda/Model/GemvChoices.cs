namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// Which of gemv.cu's interchangeable kernels each product of a small step launches. The alternatives of a product
/// take every row's sums in the same order, so they give the same bits; they differ in the loads they keep in flight,
/// and which is fastest for a shape depends on the GPU. The defaults are the H200 sweep's (<see cref="GemvVariant.For"/>,
/// the fused products' four loads a row); a runner times the alternatives at warm-up (a trial) and keeps the fastest
/// for every product whose matrix is large enough to matter.
/// </summary>
public sealed class GemvChoices(long minimumBytes)
{
    private readonly Dictionary<Product, int> _chosen = [];
    private readonly HashSet<Product> _tried = [];
    private readonly List<GemvTuning> _tunings = [];
    private readonly List<GemvStepCheck> _stepChecks = [];

    /// <summary>A product as a step launches it: the kernel family (a fused bf16 name, or "gemv" for the plain ones), the weights' format, its shape, and whether the step has one token.</summary>
    private readonly record struct Product(string Family, WeightFormat Format, int Rows, int Columns, bool OneToken);

    /// <summary>What every trial found: trial by trial, each by product and shape.</summary>
    public IReadOnlyList<GemvTuning> Tunings => _tunings;

    /// <summary>Each trial's choices against the defaults in whole decode steps, and whether they were kept.</summary>
    public IReadOnlyList<GemvStepCheck> StepChecks => _stepChecks;

    /// <summary>
    /// During a trial (a value of 0 or more): launch that alternative, modulo its count, of every product large enough
    /// to tune, and remember which products those were. Negative: launch the chosen ones.
    /// </summary>
    internal int Trial { get; set; } = -1;

    /// <summary>Launch the defaults, whatever the trials chose (the benchmark's comparison).</summary>
    internal bool UseDefaults { get; set; }

    /// <summary>Wall time of the trials so far (part of the runner's warm-up).</summary>
    public TimeSpan TrialTime { get; internal set; }

    /// <summary>The kernel for fused product <paramref name="family"/> over a [rows x columns] matrix at <paramref name="tokens"/> tokens.</summary>
    public string Fused(string family, WeightFormat format, int rows, int columns, int tokens)
    {
        var alternatives = GemvVariant.Alternatives(family);
        int index = Pick(new Product(family, format, rows, columns, tokens == 1), alternatives.Count, 0);
        return GemvVariant.ForTokens(GemvVariant.ForFormat(alternatives[index], format), tokens);
    }

    /// <summary>The plain variant for a [rows x columns] matrix at <paramref name="tokens"/> tokens (its kernel still wants <see cref="GemvVariant.ForTokens"/>).</summary>
    public GemvVariant Plain(WeightFormat format, int rows, int columns, int tokens)
    {
        var alternatives = GemvVariant.Alternatives(format);
        int fallback = Math.Max(0, IndexOf(alternatives, GemvVariant.For(rows, columns)));
        return alternatives[Pick(new Product("gemv", format, rows, columns, tokens == 1), alternatives.Count, fallback)];
    }

    /// <summary>
    /// Ends a trial at <paramref name="tokens"/> tokens: for every product it launched, the alternative with the least
    /// time a launch, each alternative's time being its best over <paramref name="rounds"/> (per launch name, as the
    /// profiler names them: kernel, then rows x columns).
    /// </summary>
    internal void Choose(IReadOnlyList<IReadOnlyList<(string Name, double Milliseconds, int Calls)>> rounds, int tokens)
    {
        var best = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var round in rounds)
        {
            foreach (var (name, ms, calls) in round)
            {
                double perCall = ms / Math.Max(1, calls);
                best[name] = best.TryGetValue(name, out double seen) ? Math.Min(seen, perCall) : perCall;
            }
        }

        foreach (var product in _tried.Where(p => p.OneToken == (tokens == 1)).OrderBy(p => p.Family, StringComparer.Ordinal).ThenBy(p => p.Rows).ThenBy(p => p.Columns))
        {
            var kernels = Kernels(product, tokens);
            var times = kernels.Select(k => (Kernel: k, Microseconds: best.TryGetValue($"{k} {product.Rows}x{product.Columns}", out double ms) ? ms * 1000 : double.NaN)).ToArray();
            int chosen = -1;
            for (int i = 0; i < times.Length; i++)
            {
                if (!double.IsNaN(times[i].Microseconds) && (chosen < 0 || times[i].Microseconds < times[chosen].Microseconds))
                {
                    chosen = i;
                }
            }

            if (chosen >= 0)
            {
                _chosen[product] = chosen;
                _tunings.Add(new GemvTuning(product.Family, product.Format, product.Rows, product.Columns, tokens, times, kernels[chosen]));
            }
        }

        _tried.RemoveWhere(p => p.OneToken == (tokens == 1));
    }

    /// <summary>
    /// Records a trial's check in whole steps at <paramref name="tokens"/> tokens and keeps its choices unless the
    /// defaults were faster by more than 1% (noise); else forgets them, and steps of that size launch the defaults
    /// again. Returns whether the choices were kept.
    /// </summary>
    internal bool Confirm(int tokens, double chosenMilliseconds, double defaultMilliseconds)
    {
        bool keep = defaultMilliseconds >= chosenMilliseconds * 0.99;
        _stepChecks.Add(new GemvStepCheck(tokens, chosenMilliseconds, defaultMilliseconds, keep));
        if (!keep)
        {
            foreach (var product in _chosen.Keys.Where(p => p.OneToken == (tokens == 1)).ToArray())
            {
                _chosen.Remove(product);
            }
        }

        return keep;
    }

    private int Pick(Product product, int count, int fallback)
    {
        if (Trial >= 0 && DeviceMatrix.BytesFor(product.Format, product.Rows, product.Columns) >= minimumBytes)
        {
            _tried.Add(product);
            return Trial % count;
        }

        return !UseDefaults && _chosen.TryGetValue(product, out int index) ? index : fallback;
    }

    /// <summary>The kernel names a product's alternatives launch under, in alternative order.</summary>
    private static string[] Kernels(Product product, int tokens) =>
        [.. (product.Family == "gemv" ? GemvVariant.Alternatives(product.Format).Select(v => v.Kernel) : GemvVariant.Alternatives(product.Family))
            .Select(k => GemvVariant.ForTokens(GemvVariant.ForFormat(k, product.Format), tokens))];

    private static int IndexOf(IReadOnlyList<GemvVariant> variants, GemvVariant variant)
    {
        for (int i = 0; i < variants.Count; i++)
        {
            if (variants[i] == variant)
            {
                return i;
            }
        }

        return -1;
    }
}

/// <summary>One product's trial: each alternative's best time a launch (NaN if it never ran) and the one kept.</summary>
public sealed record GemvTuning(string Family, WeightFormat Format, int Rows, int Columns, int Tokens, IReadOnlyList<(string Kernel, double Microseconds)> Alternatives, string Chosen);

/// <summary>A decode step of <paramref name="Tokens"/> tokens, from CUDA graphs, with a trial's choices and with the defaults (median milliseconds); <paramref name="Kept"/>: the choices serve.</summary>
public sealed record GemvStepCheck(int Tokens, double ChosenMilliseconds, double DefaultMilliseconds, bool Kept);
