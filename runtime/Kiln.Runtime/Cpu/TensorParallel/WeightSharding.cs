using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>
/// Splits a model over t ranks as Megatron-LM does: Q, K, V, gate and up are column-parallel (each rank keeps a
/// contiguous range of output rows: its heads, its part of the MLP), so their shards are views into the original
/// weights; O and down are row-parallel (each rank keeps the input columns matching its heads / MLP part), copied
/// into per-rank memory in the stored type. Norms, the embedding and the classifier are shared. With more ranks than
/// KV heads, each KV head is replicated over the ranks whose query heads read it, as vLLM does: every rank keeps one
/// KV head (its K and V rows are views too), and the query heads and the MLP still split.
/// </summary>
internal static unsafe class WeightSharding
{
    public static void Check(ModelConfig c, int ranks)
    {
        bool kvSplits = c.KvHeadCount % ranks == 0 || ranks % c.KvHeadCount == 0;
        if (c.HeadCount % ranks != 0 || !kvSplits || c.IntermediateSize % ranks != 0)
        {
            throw new ArgumentException(
                $"tensor parallelism {ranks} needs the attention heads ({c.HeadCount}) and intermediate size ({c.IntermediateSize}) to divide evenly, " +
                $"and the KV heads ({c.KvHeadCount}) to divide evenly or to divide {ranks} (each then replicated over {ranks} / {c.KvHeadCount} ranks)");
        }
    }

    public static ModelConfig RankConfig(ModelConfig c, int ranks) => c with
    {
        HeadCount = c.HeadCount / ranks,
        KvHeadCount = KvHeadsPerRank(c, ranks),
        IntermediateSize = c.IntermediateSize / ranks,
    };

    /// <summary>A rank's KV heads: its share, or one replicated head when there are more ranks than KV heads.</summary>
    public static int KvHeadsPerRank(ModelConfig c, int ranks) => c.KvHeadCount >= ranks ? c.KvHeadCount / ranks : 1;

    /// <summary>The first KV head of <paramref name="rank"/>: where its share starts, or the head its query heads read.</summary>
    public static int FirstKvHead(ModelConfig c, int rank, int ranks) =>
        c.KvHeadCount >= ranks ? rank * (c.KvHeadCount / ranks) : rank / (ranks / c.KvHeadCount);

    public static ModelWeights Shard(ModelConfig c, ModelWeights full, int rank, int ranks)
    {
        var owners = new List<IDisposable>();
        var layers = new LayerWeights[full.Layers.Count];
        int q = c.QueryDim / ranks;
        int kv = KvHeadsPerRank(c, ranks) * c.HeadDim;
        int kvStart = FirstKvHead(c, rank, ranks) * c.HeadDim;
        int inter = c.IntermediateSize / ranks;
        for (int i = 0; i < layers.Length; i++)
        {
            var l = full.Layers[i];
            layers[i] = new LayerWeights
            {
                AttentionNorm = l.AttentionNorm,
                Query = Rows(l.Query, rank * q, q),
                Key = Rows(l.Key, kvStart, kv),
                Value = Rows(l.Value, kvStart, kv),
                QueryBias = l.QueryBias?[(rank * q)..((rank + 1) * q)],
                KeyBias = l.KeyBias?[kvStart..(kvStart + kv)],
                QueryNorm = l.QueryNorm, // per head, the same for every head: whole on every rank
                KeyNorm = l.KeyNorm,
                ValueBias = l.ValueBias?[kvStart..(kvStart + kv)],
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
        int block = WeightTypeInfo.BlockValues(m.Type);
        if (start % block != 0 || count % block != 0)
        {
            throw new ArgumentException($"{m.Name}: a {m.Type} shard must cover whole blocks of {block} columns, not {start}..{start + count}");
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
