namespace Kiln.Scaler.Scaling;

/// <summary>
/// A Kubernetes equality-based label selector (<c>k=v</c>, <c>k==v</c>, <c>k!=v</c>, <c>k</c>, <c>!k</c>, comma = and),
/// matched locally: the scaler lists the cluster's pods once and filters per ScaledObject, instead of one list call each.
/// </summary>
public sealed class LabelSelector
{
    private readonly (string Key, string? Value, bool Negated)[] _terms;

    private LabelSelector((string, string?, bool)[] terms, string text)
    {
        _terms = terms;
        Text = text;
    }

    public string Text { get; }

    public static LabelSelector Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var terms = new List<(string, string?, bool)>();
        foreach (var raw in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (raw.Length == 0)
            {
                throw new FormatException($"'{text}' has an empty term");
            }

            if (raw.Contains(" in ", StringComparison.Ordinal) || raw.Contains("notin", StringComparison.Ordinal))
            {
                throw new FormatException($"'{raw}': set-based terms are not supported, use k=v, k!=v, k or !k");
            }

            (string key, string? value, bool negated) term = raw switch
            {
                _ when raw.Contains("!=", StringComparison.Ordinal) => Split(raw, "!=", negated: true),
                _ when raw.Contains("==", StringComparison.Ordinal) => Split(raw, "==", negated: false),
                _ when raw.Contains('=', StringComparison.Ordinal) => Split(raw, "=", negated: false),
                _ when raw.StartsWith('!') => (raw[1..].Trim(), null, true),
                _ => (raw, null, false),
            };
            if (term.key.Length == 0 || term.key.Any(char.IsWhiteSpace) || (term.value?.Any(char.IsWhiteSpace) ?? false))
            {
                throw new FormatException($"'{raw}' is not a valid selector term");
            }

            terms.Add(term);
        }

        return new LabelSelector([.. terms], text);
    }

    public bool Matches(IDictionary<string, string>? labels)
    {
        foreach (var (key, value, negated) in _terms)
        {
            string? actual = null;
            var has = labels is not null && labels.TryGetValue(key, out actual);
            var ok = value is null ? has : has && actual == value;
            if (ok == negated)
            {
                return false;
            }
        }

        return true;
    }

    private static (string, string?, bool) Split(string raw, string op, bool negated)
    {
        var i = raw.IndexOf(op, StringComparison.Ordinal);
        return (raw[..i].Trim(), raw[(i + op.Length)..].Trim(), negated);
    }

    public override string ToString() => Text;
}
