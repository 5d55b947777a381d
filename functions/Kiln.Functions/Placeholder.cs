namespace Kiln.Functions; internal static class Placeholder { }
