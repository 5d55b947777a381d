namespace Kiln.Scaler; internal static class Placeholder { }
