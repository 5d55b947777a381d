using System.Buffers.Binary;
using System.Text.Json;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Formats.Safetensors;

/// <summary>One tensor entry of a safetensors header: dtype, shape, and its byte range relative to the data section.</summary>
public sealed record SafetensorsTensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// A memory-mapped .safetensors file: an 8-byte little-endian header length, a JSON header, then raw tensor data.
/// Tensors are used in place from the mapping.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L << 20;
    private readonly MappedFile _file;

    private SafetensorsFile(MappedFile file, Dictionary<string, SafetensorsTensorInfo> tensors, long dataOffset)
    {
        _file = file;
        Tensors = tensors;
        DataOffset = dataOffset;
    }

    public string Path => _file.Path;

    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }

    public long DataOffset { get; }

    public static SafetensorsFile Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafetensorsFile Parse(MappedFile file)
    {
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file.Slice(0, 8, "header length"));
        if (headerLength < 2 || headerLength > MaxHeaderBytes)
        {
            throw new ModelFormatException(file.Path, $"bad header length {headerLength}: not a safetensors file");
        }

        var json = file.Slice(8, (long)headerLength, "JSON header");
        long dataOffset = 8 + (long)headerLength;
        long dataLength = file.Length - dataOffset;
        var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    continue;
                }

                var dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
                {
                    throw new ModelFormatException(file.Path, $"tensor '{entry.Name}' has invalid data_offsets");
                }

                if (offsets[1] > dataLength)
                {
                    throw new ModelFormatException(file.Path, $"tensor '{entry.Name}' is truncated: it ends at data byte {offsets[1]} but the file holds {dataLength} bytes of data");
                }

                tensors[entry.Name] = new SafetensorsTensorInfo(entry.Name, dtype, shape, offsets[0], offsets[1]);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException and not ModelFormatException)
        {
            throw new ModelFormatException(file.Path, $"malformed safetensors header ({e.Message})", e);
        }

        return new SafetensorsFile(file, tensors, dataOffset);
    }

    /// <summary>The tensor as a [rows x columns] matrix, checking its shape, dtype and byte size.</summary>
    public WeightMatrix Matrix(string name, int rows, int columns)
    {
        if (!Tensors.TryGetValue(name, out var info))
        {
            throw new ModelFormatException(Path, $"tensor '{name}' is missing");
        }

        long expectedElements = (long)rows * columns;
        bool shapeOk = info.Shape.Length switch
        {
            1 => rows == 1 && info.Shape[0] == columns,
            2 => info.Shape[0] == rows && info.Shape[1] == columns,
            _ => false,
        };
        if (!shapeOk)
        {
            throw new ModelFormatException(Path, $"tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{rows}, {columns}]");
        }

        var type = info.DType switch
        {
            "F32" => WeightType.F32,
            "F16" => WeightType.F16,
            "BF16" => WeightType.BF16,
            _ => throw new ModelFormatException(Path, $"tensor '{name}' has dtype {info.DType}, which Kiln does not support (F32, F16 and BF16 are supported)"),
        };

        long bytes = WeightTypeInfo.RowBytes(type, columns) * rows;
        if (info.End - info.Begin != bytes)
        {
            throw new ModelFormatException(Path, $"tensor '{name}' holds {info.End - info.Begin} bytes, but {expectedElements} {info.DType} values need {bytes}");
        }

        return new WeightMatrix(name, type, rows, columns, _file.Pointer + DataOffset + info.Begin);
    }

    public float[] Vector(string name, int length)
    {
        var result = new float[length];
        Matrix(name, 1, length).ReadRow(0, result);
        return result;
    }

    public void Dispose() => _file.Dispose();
}
