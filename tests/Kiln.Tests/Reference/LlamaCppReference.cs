using System.Text;
using Kiln.Bench.Common;
using LLama;
using LLama.Native;

namespace Kiln.Tests.Reference;

/// <summary>
/// llama.cpp (through LLamaSharp 0.30 and its CPU backend) as a reference implementation: loads a GGUF file on the CPU,
/// one sequence, float32 KV cache and no flash attention (so the reference adds no f16 rounding of its own), and
/// returns logits for every position of a prompt, greedy generations and tokenizations. Token ids are used as given:
/// nothing adds a BOS. Every call starts from an empty KV cache. Not thread-safe; use one instance a thread. The
/// set-up is <see cref="LlamaCppSetup"/>, shared with the CPU benchmark; it uses LLamaSharp only, nothing of Kiln.
/// </summary>
public sealed class LlamaCppReference : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    /// <param name="path">A GGUF file.</param>
    /// <param name="contextSize">Positions the KV cache holds; also the batch size, so a whole prompt is one llama_decode call.</param>
    /// <param name="threads">CPU threads; 0 for all processors.</param>
    public LlamaCppReference(string path, int contextSize = 512, int threads = 0)
    {
        threads = threads > 0 ? threads : Environment.ProcessorCount;
        var parameters = LlamaCppSetup.Parameters(path, contextSize, batchSize: contextSize, threads);
        parameters.LoadMode = LLamaLoadMode.None;
        (_weights, _context) = LlamaCppSetup.Load(parameters);
        ContextSize = contextSize;
    }

    public int VocabSize => _weights.Vocab.Count;

    public int ContextSize { get; }

    public int? Bos => _weights.Vocab.BOS is { } bos ? (int)bos : null;

    public int? Eos => _weights.Vocab.EOS is { } eos ? (int)eos : null;

    /// <summary>The GGUF metadata as llama.cpp reports it (values as strings).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _weights.Metadata;

    /// <summary>Logits of every position, row-major [tokens.Length, VocabSize]: row i predicts the token after tokens[i].</summary>
    public float[] Logits(ReadOnlySpan<int> tokens)
    {
        CheckLength(tokens.Length);
        int vocab = VocabSize;
        var logits = new float[tokens.Length * vocab];
        _context.NativeHandle.MemoryClear(true);
        _batch.Clear();
        for (int i = 0; i < tokens.Length; i++)
        {
            _batch.Add(tokens[i], i, LLamaSeqId.Zero, true);
        }

        Decode();
        for (int i = 0; i < tokens.Length; i++)
        {
            _context.NativeHandle.GetLogitsIth(i).CopyTo(logits.AsSpan(i * vocab, vocab));
        }

        return logits;
    }

    /// <summary>Logits of every position as one array a position.</summary>
    public float[][] LogitsByPosition(ReadOnlySpan<int> tokens)
    {
        var flat = Logits(tokens);
        int vocab = VocabSize;
        return [.. Enumerable.Range(0, tokens.Length).Select(i => flat.AsSpan(i * vocab, vocab).ToArray())];
    }

    /// <summary>Exactly <paramref name="count"/> greedy tokens after <paramref name="prompt"/> (argmax, lowest id on ties; EOS does not stop it).</summary>
    public int[] Greedy(ReadOnlySpan<int> prompt, int count)
    {
        if (prompt.IsEmpty)
        {
            throw new ArgumentException("the prompt needs at least one token", nameof(prompt));
        }

        CheckLength(prompt.Length + count - 1);
        _context.NativeHandle.MemoryClear(true);
        var generated = new int[count];
        _batch.Clear();
        for (int i = 0; i < prompt.Length; i++)
        {
            _batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        }

        Decode();
        int position = prompt.Length;
        for (int n = 0; n < count; n++)
        {
            generated[n] = ArgMax(_context.NativeHandle.GetLogitsIth(_batch.TokenCount - 1));
            if (n + 1 < count)
            {
                _batch.Clear();
                _batch.Add(generated[n], position++, LLamaSeqId.Zero, true);
                Decode();
            }
        }

        return generated;
    }

    /// <summary>llama.cpp's tokenization of <paramref name="text"/> (special tokens not parsed).</summary>
    public int[] Tokenize(string text, bool addBos) =>
        [.. _weights.Tokenize(text, addBos, false, Encoding.UTF8).Select(t => (int)t)];

    /// <summary>llama.cpp's detokenization (control tokens such as BOS render as nothing).</summary>
    public string Detokenize(IEnumerable<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var decoder = new StreamingTokenDecoder(Encoding.UTF8, _weights);
        foreach (int token in tokens)
        {
            decoder.Add(token);
        }

        return decoder.Read();
    }

    /// <summary>Index of the largest value; the lowest index wins a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }

    private void CheckLength(int positions)
    {
        if (positions > ContextSize)
        {
            throw new ArgumentOutOfRangeException(nameof(positions), positions, $"more positions than the context size {ContextSize}");
        }
    }

    private void Decode() => LlamaCppSetup.Decode(_context, _batch);
}
