using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Kiln.Tests.Numerics;

/// <summary>
/// Writes a .safetensors file as the format specifies it: an 8-byte little-endian header length, a JSON header
/// (dtype, shape, data_offsets relative to the data section, padded with spaces to 8 bytes), then the raw data.
/// Takes any dtype string and any bytes, so tests can also write deliberately inconsistent files.
/// </summary>
public sealed class SafetensorsTestWriter
{
    private readonly List<(string Name, string DType, long[] Shape, byte[] Data)> _tensors = [];

    public void Add(string name, string dtype, long[] shape, byte[] data) => _tensors.Add((name, dtype, shape, data));

    public void AddFloats(string name, StoredType type, long[] shape, ReadOnlySpan<float> values) =>
        Add(name, StorageCodec.SafetensorsDType(type), shape, StorageCodec.Encode(values, type));

    public long DataBytes => _tensors.Sum(t => (long)t.Data.Length);

    public void WriteTo(string path)
    {
        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, dtype, shape, data) in _tensors)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (long d in shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += data.Length;
            }

            json.WriteEndObject();
        }

        while (header.Length % 8 != 0)
        {
            header.WriteByte((byte)' ');
        }

        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        file.Write(length);
        header.Position = 0;
        header.CopyTo(file);
        foreach (var (_, _, _, data) in _tensors)
        {
            file.Write(data);
        }
    }

    /// <summary>The JSON header of a written file, for tests that want to check or edit it.</summary>
    public static string ReadHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long length = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return Encoding.UTF8.GetString(bytes, 8, (int)length);
    }
}
