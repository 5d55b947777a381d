using Kiln.Runtime.Backends;

namespace Kiln.Tests.Infrastructure;

/// <summary>
/// What a copy-on-write copy must do, checked on any backend's pool through its forward pass: after a sequence's
/// prompt is written to block A and A is copied to B, decoding the next token over B gives exactly the logits of
/// decoding it over A, and A is left as it was. A copy that does nothing (or copies only part of the block, a layer,
/// keys without values, one rank's shard) leaves B's contents unwritten and moves the logits. Compiled into Kiln.Tests
/// (CPU pools) and the CUDA checks (device pools).
/// </summary>
public static class CopyBlockCheck
{
    public static void CopiedBlock_DecodesLikeItsSource(IModelRunner runner)
    {
        const int BlockSize = 8;
        const int Source = 2, Copy = 5, Untouched = 6;
        int vocab = runner.Config.VocabSize;
        using var cache = runner.CreateKvCache(8, BlockSize, 1, 2);
        int[] prompt = [.. Enumerable.Range(0, 6).Select(i => ((i * 37) + 11) % vocab)];
        int next = 17 % vocab;
        var logits = new float[vocab];

        // The prompt into the source block.
        cache.Bind([Source, Untouched], 2, 1);
        runner.Forward(new ForwardBatch(prompt, [.. Enumerable.Range(0, prompt.Length)], [0], [prompt.Length]), cache, logits);
        cache.CopyBlock(Source, Copy);

        float[] Decode(int block)
        {
            var result = new float[vocab];
            cache.Bind([block, Untouched], 2, 1);
            runner.Forward(new ForwardBatch([next], [prompt.Length], [0], [1]), cache, result);
            return result;
        }

        // Over the copy first: a decode writes position 6 into the block it reads, so each block is decoded once.
        float[] overCopy = Decode(Copy);
        float[] overSource = Decode(Source);
        Assert.Equal(overSource, overCopy);

        // And the copy is what made the difference: a block never written decodes differently.
        float[] overEmpty = Decode(Untouched + 1);
        Assert.NotEqual(overSource, overEmpty);
    }
}
