using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Kiln.Runtime.Tensors;
using Kiln.Runtime.Tensors.Quants;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// y[t, r] = sum_c x[t, c] * W[r, c] (+ bias[r]) for all tokens of a step at once: one pass over the weights per step,
/// whatever the number of tokens. Work is split into tiles of 16 rows, each multiplied against tiles of 32 tokens with
/// register-blocked kernels (<see cref="IDotKernel"/>).
/// <para>
/// F32 rows are read in place. F16, BF16 and Q8_0 rows are read in their stored form by fused kernels that convert in
/// registers when a step has few tokens (decode), since then each weight is used once and a widened copy would only add
/// memory traffic; with more tokens each tile is widened once into per-worker scratch and the conversion is amortised
/// over the tokens. Both paths load the same float32 values and run the same operations per (row, token), so results
/// are bit-identical whichever path and however many tokens a step has.
/// </para>
/// </summary>
internal sealed unsafe class MatMulKernel : IParallelWork
{
    /// <summary>
    /// Steps with at least this many tokens widen tiles of this type into scratch; fewer run fused (results are the same
    /// either way). Measured on the bench model's matrices, 2 threads: F16's conversion (7 vector ops per 8 values)
    /// makes widening win from about 8 tokens (fused 1.4x faster at 2-4 tokens, widened 1.3x at 8); BF16 and Q8_0
    /// convert cheaply enough that fused stays ahead up to 32 tokens (10-40%), widened ahead at 128 (4-15%).
    /// </summary>
    internal static int WidenFromTokens(WeightType type) => type switch
    {
        WeightType.F16 => 6,
        WeightType.F32 or WeightType.BF16 or WeightType.Q8_0 => 64,

        // The other block types decode a block again for every pair of tokens that runs fused: from 4 tokens a tile
        // decoded once into scratch costs less.
        _ => 4,
    };

    private const int RowTile = 16;
    private const int TokenTile = 32;

    private readonly float[][] _scratchArrays;
    private readonly nint[] _scratch;
    private readonly int _maxColumns;
    private WeightMatrix? _weights;
    private float* _x;
    private float* _y;
    private float[]? _bias;
    private int _tokens;
    private int _yStride;

    public MatMulKernel(int workers, int maxColumns)
    {
        // Room for a widened tile in either layout: float32 rows padded to 8 floats, or Q8_0 rows at 40 floats a block.
        _maxColumns = maxColumns;
        int rowFloats = (maxColumns + 31) / 32 * Q8Widened.BlockFloats;
        _scratchArrays = new float[workers][];
        _scratch = new nint[workers];
        for (int i = 0; i < workers; i++)
        {
            // Pinned, and used from a 32-byte aligned start so that widened rows load without cache-line splits.
            _scratchArrays[i] = GC.AllocateArray<float>((RowTile * rowFloats) + 8, pinned: true);
            nint start = (nint)Unsafe.AsPointer(ref _scratchArrays[i][0]);
            _scratch[i] = (start + 31) & ~(nint)31;
        }
    }

    /// <summary>x is [tokens x W.Columns], y is [tokens x W.Rows]; both contiguous.</summary>
    public void Run(WorkerPool pool, WeightMatrix weights, float* x, float* y, int tokens, float[]? bias = null)
    {
        if (weights.Columns > _maxColumns)
        {
            throw new ArgumentException($"{weights.Name}: {weights.Columns} columns, scratch sized for {_maxColumns}", nameof(weights));
        }

        _weights = weights;
        _x = x;
        _y = y;
        _bias = bias;
        _tokens = tokens;
        _yStride = weights.Rows;
        pool.Run(this, (weights.Rows + RowTile - 1) / RowTile);
        _weights = null;
        _bias = null;
    }

    public void Execute(int item, int worker)
    {
        var w = _weights!;
        int columns = w.Columns;
        int rowStart = item * RowTile;
        int rowCount = Math.Min(RowTile, w.Rows - rowStart);
        byte* stored = w.Data + (w.RowBytes * rowStart);
        float* scratch = (float*)_scratch[worker];

        if (!DotKernels.Blocked)
        {
            MultiplyPortable(w, scratch, rowStart, rowCount);
        }
        else if (w.Type == WeightType.F32)
        {
            MultiplyTile<FloatDot<F32Row>>(stored, w.RowBytes, rowStart, rowCount, columns, prefetch: true);
        }
        else if (_tokens < WidenFromTokens(w.Type))
        {
            MultiplyFused(w.Type, stored, w.RowBytes, rowStart, rowCount, columns);
        }
        else
        {
            MultiplyWidened(w, stored, scratch, rowStart, rowCount);
        }

        if (_bias is not null)
        {
            for (int t = 0; t < _tokens; t++)
            {
                var y = new Span<float>(_y + ((long)t * _yStride) + rowStart, rowCount);
                TensorPrimitives.Add(y, _bias.AsSpan(rowStart, rowCount), y);
            }
        }
    }

    /// <summary>Multiplies the stored rows directly, converting or decoding them in registers (or L1, for block types).</summary>
    private void MultiplyFused(WeightType type, byte* stored, long rowBytes, int rowStart, int rowCount, int columns)
    {
        switch (type)
        {
            case WeightType.F16: MultiplyTile<FloatDot<F16Row>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.BF16: MultiplyTile<FloatDot<BF16Row>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q8_0: MultiplyTile<Q8Dot<Q8Packed>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q4_0: MultiplyTile<BlockDot<LegacyBlocks.Q4_0>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q4_1: MultiplyTile<BlockDot<LegacyBlocks.Q4_1>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q5_0: MultiplyTile<BlockDot<LegacyBlocks.Q5_0>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q5_1: MultiplyTile<BlockDot<LegacyBlocks.Q5_1>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q2_K: MultiplyTile<BlockDot<KBlocks.Q2_K>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q3_K: MultiplyTile<BlockDot<KBlocks.Q3_K>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q4_K: MultiplyTile<BlockDot<KBlocks.Q4_K>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q5_K: MultiplyTile<BlockDot<KBlocks.Q5_K>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            case WeightType.Q6_K: MultiplyTile<BlockDot<KBlocks.Q6_K>>(stored, rowBytes, rowStart, rowCount, columns, prefetch: true); break;
            default: throw new InvalidOperationException($"unsupported weight type {type}");
        }
    }

    /// <summary>Widens the tile's rows once into scratch, then multiplies all tokens against the copy.</summary>
    private void MultiplyWidened(WeightMatrix w, byte* stored, float* scratch, int rowStart, int rowCount)
    {
        int columns = w.Columns;
        if (w.Type == WeightType.Q8_0)
        {
            int blocks = columns / WeightTypeInfo.Q8BlockSize;
            int rowFloats = blocks * Q8Widened.BlockFloats;
            for (int r = 0; r < rowCount; r++)
            {
                Q8Widened.Widen(stored + (w.RowBytes * r), scratch + ((long)r * rowFloats), blocks);
            }

            MultiplyTile<Q8Dot<Q8Widened>>((byte*)scratch, rowFloats * sizeof(float), rowStart, rowCount, columns, prefetch: false);
            return;
        }

        int stride = (columns + 7) & ~7;
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = stored + (w.RowBytes * r);
            float* destination = scratch + ((long)r * stride);
            switch (w.Type)
            {
                case WeightType.F16:
                    FloatDot<F16Row>.Widen(row, destination, columns);
                    break;
                case WeightType.BF16:
                    FloatDot<BF16Row>.Widen(row, destination, columns);
                    break;
                default:
                    BlockDequantizer.Row(w.Type, row, destination, columns);
                    break;
            }
        }

        MultiplyTile<FloatDot<F32Row>>((byte*)scratch, stride * sizeof(float), rowStart, rowCount, columns, prefetch: false);
    }

    /// <summary>
    /// Row r of the tile starts at rows + r * rowBytes. <paramref name="prefetch"/>: the rows are the weights in memory,
    /// not a widened copy in cache, so the first pass over each group of 4 rows prefetches the next group.
    /// </summary>
    private void MultiplyTile<TDot>(byte* rows, long rowBytes, int rowStart, int rowCount, int columns, bool prefetch)
        where TDot : IDotKernel
    {
        for (int t0 = 0; t0 < _tokens; t0 += TokenTile)
        {
            int t1 = Math.Min(_tokens, t0 + TokenTile);
            int r = 0;
            for (; r + 4 <= rowCount; r += 4)
            {
                byte* w0 = rows + (r * rowBytes);
                byte* w1 = w0 + rowBytes;
                byte* w2 = w1 + rowBytes;
                byte* w3 = w2 + rowBytes;
                int t = t0;
                if (prefetch && t0 == 0)
                {
                    if (t + 2 <= t1)
                    {
                        TDot.Rows4Tokens2<Prefetch>(w0, w1, w2, w3, X(t), X(t + 1), columns, Y(t, rowStart + r), Y(t + 1, rowStart + r));
                        t += 2;
                    }
                    else
                    {
                        TDot.Rows4Tokens1<Prefetch>(w0, w1, w2, w3, X(t), columns, Y(t, rowStart + r));
                        t++;
                    }
                }

                for (; t + 2 <= t1; t += 2)
                {
                    TDot.Rows4Tokens2<NoPrefetch>(w0, w1, w2, w3, X(t), X(t + 1), columns, Y(t, rowStart + r), Y(t + 1, rowStart + r));
                }

                if (t < t1)
                {
                    TDot.Rows4Tokens1<NoPrefetch>(w0, w1, w2, w3, X(t), columns, Y(t, rowStart + r));
                }
            }

            for (; r < rowCount; r++)
            {
                byte* row = rows + (r * rowBytes);
                for (int t = t0; t < t1; t++)
                {
                    *Y(t, rowStart + r) = TDot.Row1(row, X(t), columns);
                }
            }
        }
    }

    /// <summary>Without AVX2/FMA: each row widened by WeightMatrix.ReadRow, then TensorPrimitives.Dot per token.</summary>
    private void MultiplyPortable(WeightMatrix w, float* scratch, int rowStart, int rowCount)
    {
        var row = new Span<float>(scratch, w.Columns);
        for (int r = 0; r < rowCount; r++)
        {
            var values = w.RowAsFloat(rowStart + r, row);
            fixed (float* v = values)
            {
                for (int t = 0; t < _tokens; t++)
                {
                    *Y(t, rowStart + r) = DotKernels.Dot(v, X(t), w.Columns);
                }
            }
        }
    }

    private float* X(int token) => _x + ((long)token * _weights!.Columns);

    private float* Y(int token, int row) => _y + ((long)token * _yStride) + row;
}
