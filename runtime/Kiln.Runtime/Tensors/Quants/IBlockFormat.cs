namespace Kiln.Runtime.Tensors.Quants;

/// <summary>
/// One ggml block type: how many values a block holds, in how many bytes, and how to decode a block to float32.
/// Decoding follows ggml's dequantize_row_* arithmetic operation for operation (the same float32 products and
/// differences, never fused), so a row Kiln decodes equals what llama.cpp's dequantizer writes. Every reader of a
/// block type goes through <see cref="Dequantize"/>: the row reader, the CPU dot kernels and the CUDA upload.
/// </summary>
internal unsafe interface IBlockFormat
{
    static abstract int BlockValues { get; }

    static abstract int BlockBytes { get; }

    /// <summary>Writes the block's <see cref="BlockValues"/> values to <paramref name="destination"/>.</summary>
    static abstract void Dequantize(byte* block, float* destination);
}
