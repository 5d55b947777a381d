using System.Buffers;
using System.Runtime.InteropServices;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Models;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Synthetic;

/// <summary>
/// Writes GGUF v3 files of architecture <c>llama</c> with deterministic pseudo-random weights and a synthetic
/// SentencePiece vocabulary, which llama.cpp loads: the same bytes feed Kiln and llama.cpp in tests and benchmarks.
/// Matrices are uniform with standard deviation 1/sqrt(fan_in) (the embedding 1/sqrt(hidden)), so that the residual
/// stream and the logits stay of order 1; norm weights are 1 ± 0.1.
/// Every tensor has its own generator seeded from the seed and the tensor's name, so tensors are generated in parallel
/// and a tensor's values do not depend on which other tensors exist.
/// </summary>
public static class RandomLlamaGguf
{
    private enum Init
    {
        Matrix,
        Norm,
        Constant,
    }

    private sealed record Spec(string Name, long[] Dims, GgmlType Type, Init Init, float Scale, IReadOnlyList<float>? Values = null)
    {
        public long Count => Dims.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>Writes the model to <paramref name="path"/> (through a temporary file, so a reader never sees half a file).</summary>
    public static void Write(string path, RandomLlamaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var writer = new GgufWriter();
        AddMetadata(writer, options);

        var specs = Specs(options);
        var data = new byte[specs.Count][];
        var order = Enumerable.Range(0, specs.Count).OrderByDescending(i => specs[i].Count).ToArray();
        Parallel.ForEach(order, i => data[i] = Generate(specs[i], options));
        foreach (var (spec, bytes) in specs.Zip(data))
        {
            writer.AddRawTensor(spec.Name, spec.Dims, spec.Type, bytes);
        }

        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        string temporary = path + ".tmp-" + Environment.ProcessId;
        try
        {
            writer.WriteTo(temporary);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Writes the model into <paramref name="directory"/> unless a file for the same options is already there; returns its path.</summary>
    public static string WriteCached(string directory, RandomLlamaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string path = Path.Combine(directory, options.CacheKey + ".gguf");
        if (!File.Exists(path))
        {
            Write(path, options);
        }

        return path;
    }

    /// <summary>
    /// Llama 3 RoPE frequency factors, as convert_hf_to_gguf.py computes them for <c>rope_freqs.weight</c>: the rotation
    /// angle of pair i is divided by factor i.
    /// </summary>
    public static float[] Llama3RopeFactors(int headDim, float ropeBase, float factor = 8f, float lowFreqFactor = 1f, float highFreqFactor = 4f, int originalContext = 8192)
    {
        var factors = new float[headDim / 2];
        double lowFreqWavelength = originalContext / lowFreqFactor;
        double highFreqWavelength = originalContext / highFreqFactor;
        for (int i = 0; i < factors.Length; i++)
        {
            double frequency = 1.0 / Math.Pow(ropeBase, 2.0 * i / headDim);
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highFreqWavelength)
            {
                factors[i] = 1f;
            }
            else if (wavelength > lowFreqWavelength)
            {
                factors[i] = factor;
            }
            else
            {
                double smooth = ((originalContext / wavelength) - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                factors[i] = (float)(1 / (((1 - smooth) / factor) + smooth));
            }
        }

        return factors;
    }

    private static void AddMetadata(GgufWriter w, RandomLlamaOptions o)
    {
        string a = o.Architecture;
        w.Add("general.architecture", a);
        w.Add("general.name", o.Name);
        w.Add("general.file_type", FileType(o.WeightType));
        w.Add($"{a}.vocab_size", (uint)o.VocabSize);
        w.Add($"{a}.context_length", (uint)o.ContextLength);
        w.Add($"{a}.embedding_length", (uint)o.Hidden);
        w.Add($"{a}.block_count", (uint)o.Layers);
        w.Add($"{a}.feed_forward_length", (uint)o.Intermediate);
        w.Add($"{a}.attention.head_count", (uint)o.Heads);
        w.Add($"{a}.attention.head_count_kv", (uint)o.KvHeads);
        w.Add($"{a}.attention.layer_norm_rms_epsilon", o.RmsEps);
        w.Add($"{a}.rope.freq_base", o.RopeBase);
        w.Add($"{a}.rope.dimension_count", (uint)o.HeadDim);
        if (o.ExplicitHeadDim is not null || o.HasQkNorm)
        {
            w.Add($"{a}.attention.key_length", (uint)o.HeadDim);
            w.Add($"{a}.attention.value_length", (uint)o.HeadDim);
        }

        var (tokens, scores, types) = SyntheticVocabulary.Build(o.VocabSize);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.scores", scores);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.bos_token_id", (uint)SyntheticVocabulary.Bos);
        w.Add("tokenizer.ggml.eos_token_id", (uint)SyntheticVocabulary.Eos);
        w.Add("tokenizer.ggml.unknown_token_id", (uint)SyntheticVocabulary.Unknown);
        w.Add("tokenizer.ggml.add_bos_token", true);
        w.Add("tokenizer.ggml.add_eos_token", false);
    }

    /// <summary>llama_ftype (llama.h) of a file whose matrices are all <paramref name="type"/>; the K kinds' "_S" mixes.</summary>
    private static uint FileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1,
        GgmlType.Q4_0 => 2,
        GgmlType.Q4_1 => 3,
        GgmlType.Q8_0 => 7,
        GgmlType.Q5_0 => 8,
        GgmlType.Q5_1 => 9,
        GgmlType.Q2_K => 10,
        GgmlType.Q3_K => 11,
        GgmlType.Q4_K => 14,
        GgmlType.Q5_K => 16,
        GgmlType.Q6_K => 18,
        GgmlType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    private static List<Spec> Specs(RandomLlamaOptions o)
    {
        long h = o.Hidden, q = (long)o.Heads * o.HeadDim, kv = (long)o.KvHeads * o.HeadDim, ff = o.Intermediate, v = o.VocabSize;
        var t = o.WeightType;
        float Std(long fanIn) => 1f / MathF.Sqrt(fanIn);
        var specs = new List<Spec> { new("token_embd.weight", [h, v], t, Init.Matrix, Std(h)) };
        for (int layer = 0; layer < o.Layers; layer++)
        {
            string p = $"blk.{layer}.";
            specs.Add(new(p + "attn_norm.weight", [h], GgmlType.F32, Init.Norm, 0.1f));
            specs.Add(new(p + "attn_q.weight", [h, q], t, Init.Matrix, Std(h)));
            specs.Add(new(p + "attn_k.weight", [h, kv], t, Init.Matrix, Std(h)));
            specs.Add(new(p + "attn_v.weight", [h, kv], t, Init.Matrix, Std(h)));
            if (o.HasAttentionBias)
            {
                specs.Add(new(p + "attn_q.bias", [q], GgmlType.F32, Init.Matrix, 0.1f));
                specs.Add(new(p + "attn_k.bias", [kv], GgmlType.F32, Init.Matrix, 0.1f));
                specs.Add(new(p + "attn_v.bias", [kv], GgmlType.F32, Init.Matrix, 0.1f));
            }

            if (o.HasQkNorm)
            {
                specs.Add(new(p + "attn_q_norm.weight", [o.HeadDim], GgmlType.F32, Init.Norm, 0.1f));
                specs.Add(new(p + "attn_k_norm.weight", [o.HeadDim], GgmlType.F32, Init.Norm, 0.1f));
            }

            specs.Add(new(p + "attn_output.weight", [q, h], t, Init.Matrix, Std(q)));
            specs.Add(new(p + "ffn_norm.weight", [h], GgmlType.F32, Init.Norm, 0.1f));
            specs.Add(new(p + "ffn_gate.weight", [h, ff], t, Init.Matrix, Std(h)));
            specs.Add(new(p + "ffn_up.weight", [h, ff], t, Init.Matrix, Std(h)));
            specs.Add(new(p + "ffn_down.weight", [ff, h], t, Init.Matrix, Std(ff)));
        }

        specs.Add(new("output_norm.weight", [h], GgmlType.F32, Init.Norm, 0.1f));
        if (!o.TiedEmbeddings)
        {
            specs.Add(new("output.weight", [h, v], t, Init.Matrix, Std(h)));
        }

        if (o.RopeFreqFactors is { } factors)
        {
            specs.Add(new("rope_freqs.weight", [factors.Count], GgmlType.F32, Init.Constant, 0f, factors));
        }

        return specs;
    }

    private static byte[] Generate(Spec spec, RandomLlamaOptions options)
    {
        int count = checked((int)spec.Count);
        var rounding = spec.Init == Init.Matrix && spec.Dims.Length == 2 ? options.RoundWeightsThrough : null; // biases stay float32
        int blockSeed = unchecked((int)(Fnv1a(spec.Name) ^ options.Seed));
        if (RandomBlocks.Supports(spec.Type))
        {
            if (rounding is not null)
            {
                throw new ArgumentException($"{spec.Type} weights are random blocks; they cannot be rounded through {rounding}");
            }

            return RandomBlocks.Generate(spec.Type, count, spec.Scale, blockSeed);
        }

        if (rounding is { } blockType && RandomBlocks.Supports(blockType))
        {
            // The very values a file of random blocks of that type holds (same seed), stored as spec.Type.
            var decoded = RandomBlocks.Decode(blockType, RandomBlocks.Generate(blockType, count, spec.Scale, blockSeed));
            return GgufWriter.Encode(decoded, spec.Type);
        }

        if (spec.Type == GgmlType.F32)
        {
            var bytes = new byte[count * sizeof(float)];
            var floats = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
            Fill(spec, options.Seed, floats);
            RoundThrough(floats, rounding);
            return bytes;
        }

        float[] buffer = ArrayPool<float>.Shared.Rent(count);
        try
        {
            var values = buffer.AsSpan(0, count);
            Fill(spec, options.Seed, values);
            RoundThrough(values, rounding);
            return GgufWriter.Encode(values, spec.Type);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    private static void Fill(Spec spec, ulong seed, Span<float> values)
    {
        if (spec.Init == Init.Constant)
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = spec.Values![i];
            }

            return;
        }

        var random = new DeterministicRandom(seed ^ Fnv1a(spec.Name));
        // Uniform on [-a, a] has standard deviation a / sqrt(3).
        float amplitude = spec.Init == Init.Matrix ? spec.Scale * MathF.Sqrt(3f) : spec.Scale;
        float offset = spec.Init == Init.Norm ? 1f : 0f;
        int i2 = 0;
        for (; i2 + 1 < values.Length; i2 += 2)
        {
            ulong bits = random.NextUInt64();
            values[i2] = offset + (amplitude * Signed((uint)bits));
            values[i2 + 1] = offset + (amplitude * Signed((uint)(bits >> 32)));
        }

        if (i2 < values.Length)
        {
            values[i2] = offset + (amplitude * Signed((uint)random.NextUInt64()));
        }
    }

    /// <summary>Replaces the values by what storing them as <paramref name="type"/> and reading them back gives.</summary>
    private static void RoundThrough(Span<float> values, GgmlType? type)
    {
        switch (type)
        {
            case null or GgmlType.F32:
                return;
            case GgmlType.F16:
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = (float)(Half)values[i];
                }

                return;
            case GgmlType.BF16:
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = BitConverter.UInt32BitsToSingle((uint)GgufWriter.ToBFloat16(values[i]) << 16);
                }

                return;
            case GgmlType.Q8_0:
                const int Block = WeightTypeInfo.Q8BlockSize, BlockBytes = WeightTypeInfo.Q8BlockBytes;
                byte[] encoded = GgufWriter.QuantizeQ8(values);
                for (int b = 0; b < values.Length / Block; b++)
                {
                    var block = encoded.AsSpan(b * BlockBytes, BlockBytes);
                    float scale = (float)MemoryMarshal.Read<Half>(block);
                    for (int i = 0; i < Block; i++)
                    {
                        values[(b * Block) + i] = scale * (sbyte)block[2 + i];
                    }
                }

                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>Uniform on [-1, 1) from the top 24 bits.</summary>
    private static float Signed(uint bits) => ((bits >> 8) * (2f / (1 << 24))) - 1f;

    private static ulong Fnv1a(string s)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in s)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return hash;
    }
}
