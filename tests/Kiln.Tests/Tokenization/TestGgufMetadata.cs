using System.Text;

namespace Kiln.Tests.Tokenization;

/// <summary>
/// Just enough of a GGUF reader for the tokenizer tests: the header's key/value metadata, with the
/// value types TokenizerLoader.FromGguf expects (every integer as long, float32 arrays as float[]).
/// The runtime's real GGUF reader lives elsewhere; this one stays private to the tests.
/// </summary>
internal static class TestGgufMetadata
{
    private const uint Magic = 0x46554747; // "GGUF" little-endian

    public static Dictionary<string, object> Read(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        if (reader.ReadUInt32() != Magic)
        {
            throw new InvalidDataException($"{path}: not a GGUF file.");
        }

        var version = reader.ReadUInt32();
        if (version is < 2 or > 3)
        {
            throw new InvalidDataException($"{path}: GGUF version {version} not handled by the test reader.");
        }

        _ = reader.ReadUInt64(); // tensor count
        var count = reader.ReadUInt64();
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (ulong i = 0; i < count; i++)
        {
            var key = ReadString(reader);
            metadata[key] = ReadValue(reader, reader.ReadUInt32());
        }

        return metadata;
    }

    private static string ReadString(BinaryReader reader) =>
        Encoding.UTF8.GetString(reader.ReadBytes(checked((int)reader.ReadUInt64())));

    private static object ReadValue(BinaryReader reader, uint type) => type switch
    {
        0 => (long)reader.ReadByte(),
        1 => (long)reader.ReadSByte(),
        2 => (long)reader.ReadUInt16(),
        3 => (long)reader.ReadInt16(),
        4 => (long)reader.ReadUInt32(),
        5 => (long)reader.ReadInt32(),
        6 => (double)reader.ReadSingle(),
        7 => reader.ReadByte() != 0,
        8 => ReadString(reader),
        9 => ReadArray(reader),
        10 => (long)reader.ReadUInt64(),
        11 => reader.ReadInt64(),
        12 => reader.ReadDouble(),
        _ => throw new InvalidDataException($"unknown GGUF value type {type}"),
    };

    private static object ReadArray(BinaryReader reader)
    {
        var type = reader.ReadUInt32();
        var length = checked((int)reader.ReadUInt64());
        switch (type)
        {
            case 6:
                return Fill(new float[length], reader.ReadSingle);
            case 12:
                return Fill(new double[length], reader.ReadDouble);
            case 7:
                return Fill(new bool[length], () => reader.ReadByte() != 0);
            case 8:
                return Fill(new string[length], () => ReadString(reader));
            case 9:
                throw new InvalidDataException("nested GGUF arrays are not handled by the test reader");
            default:
                return Fill(new long[length], () => (long)ReadValue(reader, type));
        }
    }

    private static T[] Fill<T>(T[] array, Func<T> read)
    {
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = read();
        }

        return array;
    }
}
