namespace Kiln.Runtime; internal static class Placeholder { }
