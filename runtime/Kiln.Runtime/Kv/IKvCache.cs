namespace Kiln.Runtime.Kv;

/// <summary>
/// Where attention keeps and reads past keys and values: one slot of KvDim floats per (layer, sequence, position).
/// The forward pass writes the new tokens' slots, then reads positions 0..p for a token at position p.
/// The contiguous store implements it with one array per sequence; the paged pool maps positions through block tables.
/// </summary>
public interface IKvCache
{
    int LayerCount { get; }

    int KvDim { get; }

    Span<float> Key(int layer, int sequence, int position);

    Span<float> Value(int layer, int sequence, int position);
}
