using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace Kiln.Runtime.Kv;

/// <summary>Chained hash of one full KV block: <paramref name="previous"/> is the hash of the block before it (0 for the first).</summary>
internal delegate ulong BlockHasher(ulong previous, ReadOnlySpan<int> tokens);

internal static class BlockHashing
{
    /// <summary>XxHash64 of the block's token ids, seeded with the previous block's hash so equal blocks after different prefixes differ.</summary>
    public static readonly BlockHasher XxHash = static (previous, tokens) =>
        XxHash64.HashToUInt64(MemoryMarshal.AsBytes(tokens), unchecked((long)previous));
}
