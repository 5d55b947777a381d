using System.Text;
using Kiln.Runtime.Tensors;

namespace Kiln.Runtime.Formats.Gguf;

/// <summary>
/// A GGUF file (v2 or v3), memory-mapped. Metadata values are normalised to a few CLR types so that consumers need
/// not care about the exact integer width: string, long (every integer type), double (float32/64), bool, and arrays
/// string[], long[], float[] (float32), double[] (float64), bool[].
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    private const uint Magic = 0x46554747; // "GGUF" little-endian
    private const int DefaultAlignment = 32;

    private readonly MappedFile _file;

    private GgufFile(MappedFile file, uint version, Dictionary<string, object> metadata, Dictionary<string, GgufTensorInfo> tensors, long dataOffset)
    {
        _file = file;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        DataOffset = dataOffset;
    }

    public string Path => _file.Path;

    public uint Version { get; }

    public IReadOnlyDictionary<string, object> Metadata { get; }

    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors { get; }

    public long DataOffset { get; }

    public static GgufFile Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Parse(file);
        }
        catch (Exception e) when (e is not ModelFormatException)
        {
            file.Dispose();
            throw new ModelFormatException(path, $"malformed GGUF header ({e.Message})", e);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static GgufFile Parse(MappedFile file)
    {
        var reader = new Reader(file);
        uint magic = reader.U32("magic");
        if (magic != Magic)
        {
            throw new ModelFormatException(file.Path, $"bad magic 0x{magic:X8}: not a GGUF file (expected \"GGUF\")");
        }

        uint version = reader.U32("version");
        if (version is < 2 or > 3)
        {
            throw new ModelFormatException(file.Path, $"unsupported GGUF version {version} (Kiln reads versions 2 and 3)");
        }

        long tensorCount = reader.Count("tensor count");
        long metadataCount = reader.Count("metadata count");

        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (long i = 0; i < metadataCount; i++)
        {
            string key = reader.String("metadata key");
            var type = (GgufValueType)reader.U32($"type of metadata '{key}'");
            metadata[key] = reader.Value(type, key);
        }

        var tensors = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        for (long i = 0; i < tensorCount; i++)
        {
            string name = reader.String("tensor name");
            uint dimensionCount = reader.U32($"dimension count of tensor '{name}'");
            if (dimensionCount is 0 or > 4)
            {
                throw new ModelFormatException(file.Path, $"tensor '{name}' has {dimensionCount} dimensions (GGUF allows 1 to 4)");
            }

            var dims = new long[dimensionCount];
            for (int d = 0; d < dims.Length; d++)
            {
                dims[d] = reader.Count($"dimension {d} of tensor '{name}'");
            }

            uint type = reader.U32($"type of tensor '{name}'");
            long offset = reader.Count($"offset of tensor '{name}'");
            tensors[name] = new GgufTensorInfo(name, dims, type, offset);
        }

        long alignment = metadata.TryGetValue("general.alignment", out var a) && a is long al && al > 0 ? al : DefaultAlignment;
        long dataOffset = (reader.Position + alignment - 1) / alignment * alignment;
        return new GgufFile(file, version, metadata, tensors, dataOffset);
    }

    public bool TryGet<T>(string key, out T value)
    {
        if (Metadata.TryGetValue(key, out var raw) && raw is T typed)
        {
            value = typed;
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>A required metadata value; a missing key or a value of the wrong type names the file and the key.</summary>
    public T Require<T>(string key)
    {
        if (!Metadata.TryGetValue(key, out var raw))
        {
            throw new ModelFormatException(Path, $"metadata key '{key}' is missing");
        }

        return raw is T typed
            ? typed
            : throw new ModelFormatException(Path, $"metadata key '{key}' has type {raw.GetType().Name}, expected {typeof(T).Name}");
    }

    /// <summary>
    /// The tensor as a weight matrix [rows x columns] where the GGUF dimensions are [columns, rows] (ggml order).
    /// A 1-D tensor is one row. Checks the shape, the type and that the data lies inside the file.
    /// </summary>
    public WeightMatrix Matrix(string name, int rows, int columns)
    {
        var info = Tensor(name);
        long expectedRows = info.Dimensions.Length > 1 ? info.Dimensions.Skip(1).Aggregate(1L, (x, y) => x * y) : 1;
        if (info.Dimensions[0] != columns || expectedRows != rows)
        {
            throw new ModelFormatException(Path, $"tensor '{name}' has shape [{string.Join(", ", info.Dimensions)}], expected [{columns}, {rows}]");
        }

        var type = ToWeightType(info);
        int blockValues = WeightTypeInfo.BlockValues(type);
        if (columns % blockValues != 0)
        {
            throw new ModelFormatException(Path, $"tensor '{name}' is {type} but its rows of {columns} are not a multiple of its block of {blockValues}");
        }

        long bytes = WeightTypeInfo.RowBytes(type, columns) * rows;
        long start = DataOffset + info.Offset;
        if (info.Offset < 0 || start > _file.Length || bytes > _file.Length - start)
        {
            throw new ModelFormatException(Path, $"tensor '{name}' is truncated: it needs bytes {start}..{start + bytes} but the file has {_file.Length}");
        }

        return new WeightMatrix(name, type, rows, columns, _file.Pointer + start);
    }

    /// <summary>A 1-D tensor of <paramref name="length"/> values, widened to float32 (norm weights, biases, RoPE factors).</summary>
    public float[] Vector(string name, int length)
    {
        var matrix = Matrix(name, 1, length);
        var result = new float[length];
        matrix.ReadRow(0, result);
        return result;
    }

    public GgufTensorInfo Tensor(string name) =>
        Tensors.TryGetValue(name, out var info) ? info : throw new ModelFormatException(Path, $"tensor '{name}' is missing");

    private WeightType ToWeightType(GgufTensorInfo info) =>
        GgmlTypes.ToWeightType((GgmlType)info.RawType) is { } type
            ? type
            : throw new ModelFormatException(Path, $"tensor '{info.Name}' has ggml type {TypeName((GgmlType)info.RawType)}, which Kiln does not read; it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K to Q6_K (re-quantize the model to one of these, for example Q4_K_M)");

    private static string TypeName(GgmlType type) => Enum.IsDefined(type) ? $"{type} ({(uint)type})" : $"{(uint)type}";

    public void Dispose() => _file.Dispose();

    /// <summary>A bounds-checked cursor over the header: every read past the end names what was being read.</summary>
    private sealed class Reader(MappedFile file)
    {
        private const long MaxCount = 1L << 40;

        public long Position { get; private set; }

        public uint U32(string what) => Read<uint>(what);

        public long Count(string what)
        {
            ulong value = Read<ulong>(what);
            return value <= MaxCount ? (long)value : throw new ModelFormatException(file.Path, $"{what} is implausibly large ({value})");
        }

        public string String(string what)
        {
            long length = Count($"length of {what}");
            var bytes = Take(length, what);
            return Encoding.UTF8.GetString(bytes);
        }

        public object Value(GgufValueType type, string key) => type switch
        {
            GgufValueType.UInt8 => (long)Read<byte>(key),
            GgufValueType.Int8 => (long)Read<sbyte>(key),
            GgufValueType.UInt16 => (long)Read<ushort>(key),
            GgufValueType.Int16 => (long)Read<short>(key),
            GgufValueType.UInt32 => (long)Read<uint>(key),
            GgufValueType.Int32 => (long)Read<int>(key),
            GgufValueType.UInt64 => (long)Read<ulong>(key),
            GgufValueType.Int64 => Read<long>(key),
            GgufValueType.Float32 => (double)Read<float>(key),
            GgufValueType.Float64 => Read<double>(key),
            GgufValueType.Bool => Read<byte>(key) != 0,
            GgufValueType.String => String(key),
            GgufValueType.Array => Array(key),
            _ => throw new ModelFormatException(file.Path, $"metadata '{key}' has unknown value type {(uint)type}"),
        };

        private object Array(string key)
        {
            var elementType = (GgufValueType)U32($"element type of '{key}'");
            long count = Count($"length of '{key}'");
            if (count > file.Length - Position)
            {
                throw new ModelFormatException(file.Path, $"array '{key}' of {count} elements runs past the end of the file");
            }

            int n = (int)count;
            switch (elementType)
            {
                case GgufValueType.String:
                    var strings = new string[n];
                    for (int i = 0; i < n; i++)
                    {
                        strings[i] = String(key);
                    }

                    return strings;
                case GgufValueType.Float32:
                    return Fill(new float[n], i => Read<float>(key));
                case GgufValueType.Float64:
                    return Fill(new double[n], i => Read<double>(key));
                case GgufValueType.Bool:
                    return Fill(new bool[n], i => Read<byte>(key) != 0);
                case GgufValueType.Array:
                    var nested = new object[n];
                    for (int i = 0; i < n; i++)
                    {
                        nested[i] = Array(key);
                    }

                    return nested;
                default:
                    var longs = new long[n];
                    for (int i = 0; i < n; i++)
                    {
                        longs[i] = (long)Value(elementType, key);
                    }

                    return longs;
            }
        }

        private static T[] Fill<T>(T[] array, Func<int, T> next)
        {
            for (int i = 0; i < array.Length; i++)
            {
                array[i] = next(i);
            }

            return array;
        }

        private T Read<T>(string what)
            where T : unmanaged
        {
            var bytes = Take(sizeof(T), what);
            return System.Runtime.CompilerServices.Unsafe.ReadUnaligned<T>(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(bytes));
        }

        private ReadOnlySpan<byte> Take(long length, string what)
        {
            var span = file.Slice(Position, length, what);
            Position += length;
            return span;
        }
    }
}
