namespace Kiln.Runtime.Models;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeLayout
{
    /// <summary>Hugging Face (GPT-NeoX style): dimension i rotates with i + headDim/2.</summary>
    HalfSplit,

    /// <summary>GGUF/llama.cpp for Llama: dimensions 2i and 2i+1 rotate together (the converter permuted Q and K).</summary>
    AdjacentPairs,
}

/// <summary>Llama 3.1-style frequency-dependent RoPE scaling ("rope_type": "llama3").</summary>
public sealed record Llama3RopeScaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor, int OriginalMaxPositions);

/// <summary>The shape and hyper-parameters of a Llama-family decoder, whatever file it came from.</summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }

    public required int VocabSize { get; init; }

    public required int HiddenSize { get; init; }

    public required int IntermediateSize { get; init; }

    public required int LayerCount { get; init; }

    public required int HeadCount { get; init; }

    public required int KvHeadCount { get; init; }

    public required int HeadDim { get; init; }

    public required int MaxPositions { get; init; }

    public double RmsNormEps { get; init; } = 1e-5;

    public double RopeTheta { get; init; } = 10000;

    public RopeLayout RopeLayout { get; init; } = RopeLayout.HalfSplit;

    public Llama3RopeScaling? RopeScaling { get; init; }

    public bool AttentionBias { get; init; }

    public bool TiedEmbeddings { get; init; }

    /// <summary>Queries and keys are RMS-normalised per head (over HeadDim, own weights) before RoPE: Qwen3.</summary>
    public bool QkNorm { get; init; }

    public int QueryDim => HeadCount * HeadDim;

    public int KvDim => KvHeadCount * HeadDim;

    /// <summary>Throws naming <paramref name="source"/> when the numbers cannot describe a working model.</summary>
    public void Validate(string source)
    {
        void Check(bool ok, string problem)
        {
            if (!ok)
            {
                throw new Formats.ModelFormatException(source, problem);
            }
        }

        Check(VocabSize > 0, $"vocab size {VocabSize} must be positive");
        Check(HiddenSize > 0, $"hidden size {HiddenSize} must be positive");
        Check(IntermediateSize > 0, $"intermediate size {IntermediateSize} must be positive");
        Check(LayerCount > 0, $"layer count {LayerCount} must be positive");
        Check(HeadCount > 0 && KvHeadCount > 0, $"head counts ({HeadCount}, {KvHeadCount} KV) must be positive");
        Check(HeadCount % KvHeadCount == 0, $"{HeadCount} attention heads are not a multiple of {KvHeadCount} KV heads");
        Check(HeadDim > 0 && HeadDim % 2 == 0, $"head dimension {HeadDim} must be positive and even");
        Check(MaxPositions > 0, $"context length {MaxPositions} must be positive");
        Check(RmsNormEps > 0, $"RMSNorm epsilon {RmsNormEps} must be positive");
        Check(RopeTheta > 0, $"RoPE base {RopeTheta} must be positive");
    }
}
