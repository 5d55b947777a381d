namespace Kiln.Tokenization; internal static class Placeholder { }
