using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>
/// Splits a model over t ranks as Megatron-LM does: Q, K, V, gate and up are column-parallel (each rank keeps a
/// contiguous range of output rows: its heads, its part of the MLP), so their shards are views into the original
/// weights; O and down are row-parallel (each rank keeps the input columns matching its heads / MLP part), copied
/// into per-rank memory in the stored type. Norms, the embedding and the classifier are shared.
/// </summary>
internal static unsafe class WeightSharding
{
    public static void Check(ModelConfig c, int ranks)
    {
        if (c.HeadCount % ranks != 0 || c.KvHeadCount % ranks != 0 || c.IntermediateSize % ranks != 0)
        {
            throw new ArgumentException($"tensor parallelism {ranks} needs the attention heads ({c.HeadCount}), KV heads ({c.KvHeadCount}) and intermediate size ({c.IntermediateSize}) to divide evenly");
        }
    }

    public static ModelConfig RankConfig(ModelConfig c, int ranks) => c with
    {
        HeadCount = c.HeadCount / ranks,
        KvHeadCount = c.KvHeadCount / ranks,
        IntermediateSize = c.IntermediateSize / ranks,
    };

    public static ModelWeights Shard(ModelConfig c, ModelWeights full, int rank, int ranks)
    {
        var owners = new List<IDisposable>();
        var layers = new LayerWeights[full.Layers.Count];
        int q = c.QueryDim / ranks;
        int kv = c.KvDim / ranks;
        int inter = c.IntermediateSize / ranks;
        for (int i = 0; i < layers.Length; i++)
        {
            var l = full.Layers[i];
            layers[i] = new LayerWeights
            {
                AttentionNorm = l.AttentionNorm,
                Query = Rows(l.Query, rank * q, q),
                Key = Rows(l.Key, rank * kv, kv),
                Value = Rows(l.Value, rank * kv, kv),
                QueryBias = l.QueryBias?[(rank * q)..((rank + 1) * q)],
                KeyBias = l.KeyBias?[(rank * kv)..((rank + 1) * kv)],
                ValueBias = l.ValueBias?[(rank * kv)..((rank + 1) * kv)],
                Output = Columns(l.Output, rank * q, q, owners),
                FeedForwardNorm = l.FeedForwardNorm,
                Gate = Rows(l.Gate, rank * inter, inter),
                Up = Rows(l.Up, rank * inter, inter),
                Down = Columns(l.Down, rank * inter, inter, owners),
            };
        }

        return new ModelWeights(full.Embedding, layers, full.FinalNorm, full.Classifier, full.RopeFactors, owners);
    }

    /// <summary>Rows [start, start+count): contiguous in a row-major matrix, so a view.</summary>
    private static WeightMatrix Rows(WeightMatrix m, int start, int count) =>
        new($"{m.Name}[rows {start}..{start + count}]", m.Type, count, m.Columns, m.Data + (m.RowBytes * start));

    /// <summary>Columns [start, start+count) of every row, copied into new memory in the stored type.</summary>
    private static WeightMatrix Columns(WeightMatrix m, int start, int count, List<IDisposable> owners)
    {
        if (m.Type == WeightType.Q8_0 && (start % WeightTypeInfo.Q8BlockSize != 0 || count % WeightTypeInfo.Q8BlockSize != 0))
        {
            throw new ArgumentException($"{m.Name}: a Q8_0 shard must cover whole blocks of {WeightTypeInfo.Q8BlockSize} columns, not {start}..{start + count}");
        }

        long offset = WeightTypeInfo.RowBytes(m.Type, start);
        long rowBytes = WeightTypeInfo.RowBytes(m.Type, count);
        var buffer = new NativeBuffer(rowBytes * m.Rows);
        owners.Add(buffer);
        for (int r = 0; r < m.Rows; r++)
        {
            Buffer.MemoryCopy(m.Data + (m.RowBytes * r) + offset, buffer.Pointer + (rowBytes * r), rowBytes, rowBytes);
        }

        return new WeightMatrix($"{m.Name}[columns {start}..{start + count}]", m.Type, m.Rows, count, buffer.Pointer);
    }
}
