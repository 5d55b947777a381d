using System.Numerics.Tensors;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Cpu;

/// <summary>
/// y[t, r] = sum_c x[t, c] * W[r, c] (+ bias[r]) for all tokens of a step at once: one pass over the weights per step,
/// whatever the number of tokens. Work is split into tiles of rows; each tile widens its rows to float32 once
/// (BF16/F16/Q8_0 stay in their stored form in memory) and reuses them for every token.
/// </summary>
internal sealed unsafe class MatMulKernel : IParallelWork
{
    private const int RowTile = 16;
    private const int TokenTile = 32;

    private readonly float[][] _scratch;
    private WeightMatrix? _weights;
    private float* _x;
    private float* _y;
    private float[]? _bias;
    private int _tokens;
    private int _yStride;

    public MatMulKernel(int workers, int maxColumns)
    {
        _scratch = new float[workers][];
        for (int i = 0; i < workers; i++)
        {
            _scratch[i] = new float[RowTile * maxColumns];
        }
    }

    /// <summary>x is [tokens x W.Columns], y is [tokens x W.Rows]; both contiguous.</summary>
    public void Run(WorkerPool pool, WeightMatrix weights, float* x, float* y, int tokens, float[]? bias = null)
    {
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
        var scratch = _scratch[worker];

        // Widen the tile's rows once; float32 rows are read in place.
        bool inPlace = w.Type == WeightType.F32;
        if (!inPlace)
        {
            for (int r = 0; r < rowCount; r++)
            {
                w.ReadRow(rowStart + r, scratch.AsSpan(r * columns, columns));
            }
        }

        fixed (float* widened = scratch)
        {
            float* rows = inPlace ? (float*)(w.Data + (w.RowBytes * rowStart)) : widened;
            for (int t0 = 0; t0 < _tokens; t0 += TokenTile)
            {
                MultiplyTile(rows, rowStart, rowCount, t0, Math.Min(_tokens, t0 + TokenTile), columns);
            }
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

    /// <summary>Rows are contiguous: row r of the tile starts at rows + r * columns.</summary>
    private void MultiplyTile(float* rows, int rowStart, int rowCount, int t0, int t1, int columns)
    {
        int r = 0;
        if (DotKernels.Blocked)
        {
            for (; r + 4 <= rowCount; r += 4)
            {
                float* w0 = rows + ((long)r * columns);
                float* w1 = w0 + columns;
                float* w2 = w1 + columns;
                float* w3 = w2 + columns;
                int t = t0;
                for (; t + 2 <= t1; t += 2)
                {
                    float* y0 = _y + ((long)t * _yStride) + rowStart + r;
                    DotKernels.Rows4Tokens2(w0, w1, w2, w3, X(t), X(t + 1), columns, y0, y0 + _yStride);
                }

                if (t < t1)
                {
                    DotKernels.Rows4Tokens1(w0, w1, w2, w3, X(t), columns, _y + ((long)t * _yStride) + rowStart + r);
                }
            }
        }

        for (; r < rowCount; r++)
        {
            float* row = rows + ((long)r * columns);
            for (int t = t0; t < t1; t++)
            {
                _y[((long)t * _yStride) + rowStart + r] = DotKernels.Dot(row, X(t), columns);
            }
        }
    }

    private float* X(int token) => _x + ((long)token * _weights!.Columns);
}
