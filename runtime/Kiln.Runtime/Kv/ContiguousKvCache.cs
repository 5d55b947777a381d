using Kiln.Runtime.Models;

namespace Kiln.Runtime.Kv;

/// <summary>The simplest KV store: a fixed number of sequence slots, each a contiguous [layers x context x kvDim] region.</summary>
public sealed class ContiguousKvCache : IKvCache
{
    private readonly float[] _keys;
    private readonly float[] _values;
    private readonly int _sequenceStride;
    private readonly int _layerStride;

    public ContiguousKvCache(ModelConfig config, int sequences, int maxContext)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequences);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxContext);
        LayerCount = config.LayerCount;
        KvDim = config.KvDim;
        Sequences = sequences;
        MaxContext = maxContext;
        _layerStride = maxContext * KvDim;
        _sequenceStride = LayerCount * _layerStride;
        _keys = new float[(long)sequences * _sequenceStride];
        _values = new float[_keys.Length];
    }

    public int LayerCount { get; }

    public int KvDim { get; }

    public int Sequences { get; }

    public int MaxContext { get; }

    public Span<float> Key(int layer, int sequence, int position) => _keys.AsSpan(Offset(layer, sequence, position), KvDim);

    public Span<float> Value(int layer, int sequence, int position) => _values.AsSpan(Offset(layer, sequence, position), KvDim);

    private int Offset(int layer, int sequence, int position)
    {
        if ((uint)sequence >= (uint)Sequences || (uint)position >= (uint)MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"sequence {sequence} position {position} is outside this cache ({Sequences} sequences of {MaxContext} positions)");
        }

        return (sequence * _sequenceStride) + (layer * _layerStride) + (position * KvDim);
    }
}
