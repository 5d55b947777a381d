namespace Kiln.Tokenization;

/// <summary>
/// Typed access to GGUF metadata values (string, long, double, bool and their arrays, float[] for
/// float32 arrays) whose errors name the source file and the key.
/// </summary>
internal sealed class GgufMetadataReader(IReadOnlyDictionary<string, object> metadata, string sourceName)
{
    public InvalidDataException Error(string key, string message, Exception? inner = null) =>
        new($"{sourceName}: {key}: {message}", inner);

    public T Require<T>(string key)
        where T : class =>
        OptionalRef<T>(key) ?? throw Error(key, "missing.");

    public T? OptionalRef<T>(string key)
        where T : class
    {
        if (!metadata.TryGetValue(key, out var value))
        {
            return null;
        }

        return value as T ?? throw Error(key, $"expected {typeof(T).Name}, found {value?.GetType().Name ?? "null"}.");
    }

    public bool? OptionalBool(string key) => metadata.TryGetValue(key, out var value)
        ? value as bool? ?? throw Error(key, $"expected Boolean, found {value?.GetType().Name ?? "null"}.")
        : null;

    /// <summary>Scores are float32 arrays; a double[] is accepted too.</summary>
    public float[] RequireFloats(string key) => metadata.TryGetValue(key, out var value)
        ? value switch
        {
            float[] floats => floats,
            double[] doubles => Array.ConvertAll(doubles, d => (float)d),
            _ => throw Error(key, $"expected Single[], found {value?.GetType().Name ?? "null"}."),
        }
        : throw Error(key, "missing.");

    /// <summary>A token id, or null when absent or the "none" marker (-1 / 0xFFFFFFFF).</summary>
    public int? OptionalId(string key, int vocabularySize)
    {
        if (!metadata.TryGetValue(key, out var value))
        {
            return null;
        }

        if (value is not long id)
        {
            throw Error(key, $"expected an integer, found {value?.GetType().Name ?? "null"}.");
        }

        if (id is -1 or uint.MaxValue)
        {
            return null;
        }

        return id >= 0 && id < vocabularySize
            ? (int)id
            : throw Error(key, $"token id {id} is outside the vocabulary of {vocabularySize}.");
    }

    public void RequireLength(string key, int actual, int expected)
    {
        if (actual != expected)
        {
            throw Error(key, $"has {actual} entries but tokenizer.ggml.tokens has {expected}.");
        }
    }
}
