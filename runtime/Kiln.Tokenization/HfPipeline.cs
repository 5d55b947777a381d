using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using static Kiln.Tokenization.JsonReading;

namespace Kiln.Tokenization;

/// <summary>
/// What a tokenizer.json says around the BPE model: normalizer, pre-tokenizer, decoder and
/// post-processor, reduced to the settings Kiln's two BPE front ends need. Component types outside
/// the byte-level and SentencePiece schemes throw, so an unsupported file fails loudly.
/// </summary>
internal sealed class HfPipeline
{
    private readonly string _source;
    private readonly List<Func<string, string>> _normalizerSteps = [];

    private HfPipeline(string source)
    {
        _source = source;
    }

    public TextNormalizer Normalizer => TextNormalizer.Of(_normalizerSteps);

    /// <summary>A normalizer step writes '▁' (legacy Llama: Prepend + Replace).</summary>
    public bool HasMetaspaceNormalizer { get; private set; }

    public bool ByteLevel { get; private set; }

    public bool AddPrefixSpace { get; private set; }

    public List<PreTokenizerRegex> Splits { get; } = [];

    public MetaspaceSettings? Metaspace { get; private set; }

    public bool DecoderByteLevel { get; private set; }

    public bool DecoderSentencePiece { get; private set; }

    public bool DecoderStripsLeadingSpace { get; private set; }

    /// <summary>Token names and ids the post-processor puts before/after the text.</summary>
    public List<(string Name, int[] Ids)> Prefix { get; } = [];

    public List<(string Name, int[] Ids)> Suffix { get; } = [];

    public static HfPipeline Parse(JsonElement root, string source)
    {
        var pipeline = new HfPipeline(source);
        if (Property(root, "normalizer") is { } normalizer)
        {
            pipeline.ParseNormalizer(normalizer);
        }

        if (Property(root, "pre_tokenizer") is { } preTokenizer)
        {
            pipeline.ParsePreTokenizer(preTokenizer);
        }

        if (Property(root, "decoder") is { } decoder)
        {
            pipeline.ParseDecoder(decoder);
        }

        if (Property(root, "post_processor") is { } postProcessor)
        {
            pipeline.ParsePostProcessor(postProcessor);
        }

        return pipeline;
    }

    private string Type(JsonElement element, string what) =>
        String(element, "type", _source) ?? throw Malformed(_source, $"{what} without a 'type'.");

    private void ParseNormalizer(JsonElement n)
    {
        switch (Type(n, "normalizer"))
        {
            case "Sequence":
                foreach (var child in Array(n, "normalizers", _source))
                {
                    ParseNormalizer(child);
                }

                break;
            case "NFC": _normalizerSteps.Add(TextNormalizer.Unicode(NormalizationForm.FormC)); break;
            case "NFD": _normalizerSteps.Add(TextNormalizer.Unicode(NormalizationForm.FormD)); break;
            case "NFKC": _normalizerSteps.Add(TextNormalizer.Unicode(NormalizationForm.FormKC)); break;
            case "NFKD": _normalizerSteps.Add(TextNormalizer.Unicode(NormalizationForm.FormKD)); break;
            case "Lowercase": _normalizerSteps.Add(TextNormalizer.Lowercase()); break;
            case "Prepend":
                var prefix = String(n, "prepend", _source) ?? throw Malformed(_source, "Prepend without 'prepend'.");
                HasMetaspaceNormalizer |= prefix.Contains('▁');
                _normalizerSteps.Add(TextNormalizer.Prepend(prefix));
                break;
            case "Replace":
                var (pattern, isRegex) = Pattern(n, _source);
                var content = String(n, "content", _source) ?? string.Empty;
                HasMetaspaceNormalizer |= content.Contains('▁');
                _normalizerSteps.Add(isRegex ? CompileReplace(pattern, content) : TextNormalizer.Replace(pattern, content));
                break;
            case var other:
                throw Malformed(_source, $"normalizer type '{other}' is not supported.");
        }
    }

    private void ParsePreTokenizer(JsonElement p)
    {
        switch (Type(p, "pre_tokenizer"))
        {
            case "Sequence":
                foreach (var child in Array(p, "pretokenizers", _source))
                {
                    ParsePreTokenizer(child);
                }

                break;
            case "ByteLevel":
                ByteLevel = true;
                AddPrefixSpace = Bool(p, "add_prefix_space", _source) ?? true;
                if (Bool(p, "use_regex", _source) ?? true)
                {
                    Splits.Add(new PreTokenizerRegex(PreTokenizerRegex.Gpt2Pattern));
                }

                break;
            case "Split":
                var behavior = String(p, "behavior", _source);
                if (behavior != "Isolated" || Bool(p, "invert", _source) == true)
                {
                    throw Malformed(_source, $"Split pre-tokenizer with behavior '{behavior}' (or invert) is not supported.");
                }

                var (pattern, isRegex) = Pattern(p, _source);
                Splits.Add(CompileSplit(isRegex ? pattern : Regex.Escape(pattern)));
                break;
            case "Metaspace":
                var replacement = String(p, "replacement", _source) is { Length: 1 } r ? r[0] : '▁';
                var scheme = String(p, "prepend_scheme", _source)
                    ?? (Bool(p, "add_prefix_space", _source) == false ? "never" : "always");
                Metaspace = new MetaspaceSettings(replacement, scheme == "always", scheme == "first", Bool(p, "split", _source) ?? true);
                break;
            case var other:
                throw Malformed(_source, $"pre_tokenizer type '{other}' is not supported.");
        }
    }

    private void ParseDecoder(JsonElement d)
    {
        switch (Type(d, "decoder"))
        {
            case "Sequence":
                foreach (var child in Array(d, "decoders", _source))
                {
                    ParseDecoder(child);
                }

                break;
            case "ByteLevel":
                DecoderByteLevel = true;
                break;
            case "ByteFallback" or "Fuse":
                DecoderSentencePiece = true;
                break;
            case "Replace":
                DecoderSentencePiece |= Pattern(d, _source).Text == "▁";
                break;
            case "Strip":
                DecoderStripsLeadingSpace |= String(d, "content", _source) == " " && (Int(d, "start", _source) ?? 0) > 0;
                break;
            case "Metaspace":
                DecoderSentencePiece = true;
                DecoderStripsLeadingSpace |= (String(d, "prepend_scheme", _source) ?? "always") != "never"
                    && Bool(d, "add_prefix_space", _source) != false;
                break;
            default:
                // Other decoders only shape display text; ids still decode through their bytes.
                break;
        }
    }

    private void ParsePostProcessor(JsonElement p)
    {
        switch (Type(p, "post_processor"))
        {
            case "Sequence":
                foreach (var child in Array(p, "processors", _source))
                {
                    ParsePostProcessor(child);
                }

                break;
            case "ByteLevel":
                break;
            case "TemplateProcessing":
                ParseTemplate(p);
                break;
            case "RobertaProcessing" or "BertProcessing":
                Prefix.Add(NamedId(p, "cls"));
                Suffix.Add(NamedId(p, "sep"));
                break;
            case var other:
                throw Malformed(_source, $"post_processor type '{other}' is not supported.");
        }
    }

    private void ParseTemplate(JsonElement p)
    {
        var specials = Property(p, "special_tokens");
        var seenSequence = false;
        foreach (var item in Array(p, "single", _source))
        {
            if (Property(item, "Sequence") is not null)
            {
                seenSequence = true;
                continue;
            }

            var special = Property(item, "SpecialToken") ?? throw Malformed(_source, "template item is neither Sequence nor SpecialToken.");
            var name = String(special, "id", _source) ?? throw Malformed(_source, "template SpecialToken without 'id'.");
            var entry = specials is { } s ? Property(s, name) : null;
            var ids = entry is { } e
                ? Array(e, "ids", _source).Select(x => x.GetInt32()).ToArray()
                : throw Malformed(_source, $"template token '{name}' is missing from special_tokens.");
            (seenSequence ? Suffix : Prefix).Add((name, ids));
        }
    }

    private (string Name, int[] Ids) NamedId(JsonElement p, string name)
    {
        var pair = Property(p, name) is { ValueKind: JsonValueKind.Array } a ? a.EnumerateArray().ToArray() : [];
        return pair.Length == 2 && pair[0].ValueKind == JsonValueKind.String && pair[1].TryGetInt32(out var id)
            ? (pair[0].GetString()!, [id])
            : throw Malformed(_source, $"post_processor '{name}' must be [token, id].");
    }

    private PreTokenizerRegex CompileSplit(string pattern)
    {
        try
        {
            return new PreTokenizerRegex(pattern);
        }
        catch (ArgumentException e)
        {
            throw Malformed(_source, $"Split regex is not supported by .NET: {e.Message}", e);
        }
    }

    private Func<string, string> CompileReplace(string pattern, string content)
    {
        try
        {
            return TextNormalizer.ReplaceRegex(pattern, content);
        }
        catch (ArgumentException e)
        {
            throw Malformed(_source, $"Replace regex is not supported by .NET: {e.Message}", e);
        }
    }
}
