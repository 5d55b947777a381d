using System.Globalization;
using Kiln.ScalerSim;

// kiln-scalersim sim ...: replays a trace through the scaler's decision code and a KEDA/HPA model.
// kiln-scalersim bench ...: GetMetrics latency of one in-process scaler serving many ScaledObjects.
if (args.Length == 0 || args[0] is not ("sim" or "bench"))
{
    Console.Error.WriteLine(SimOptions.Usage);
    return args.Length == 0 || args[0] is "-h" or "--help" ? 0 : 2;
}

var root = Kiln.LocalCluster.AzuriteProcess.RepoRoot();
if (args[0] == "bench")
{
    return await GetMetricsBench.RunAsync(args[1..]);
}

SimOptions o;
try
{
    o = SimOptions.Parse(args[1..]);
}
catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

if (string.IsNullOrEmpty(o.Trace))
{
    o.Trace = Path.Combine(root, "..", "shared", "traces", "AzureLLMInferenceTrace_conv.csv");
}

if (!File.Exists(o.Trace))
{
    Console.Error.WriteLine($"trace not found: {o.Trace}");
    return 1;
}

var outDir = string.IsNullOrEmpty(o.Out) ? Path.Combine(root, "bench", "results") : o.Out;
Directory.CreateDirectory(outDir);
var trace = Trace.LoadAzure(o.Trace);
var sim = new Simulator(o, trace);
var kiln = sim.Run(new KilnPolicy(o));
var baseline = sim.Run(new WaitingRequestsPolicy(o));
var always = sim.Run(new KilnPolicy(o), alwaysOn: Math.Max(1, kiln.PeakReplicas));
SimResult[] results = [kiln, baseline, always];

var name = Path.GetFileNameWithoutExtension(o.Trace);
var command = "dotnet run -c Release --project bench/Kiln.ScalerSim -- " + string.Join(' ', args);
var md = Report.Markdown(o, command, trace.Count, trace[^1].Arrival, results);
File.WriteAllText(Path.Combine(outDir, $"scaler-sim-{name}.md"), md);
Report.Plot(Path.Combine(outDir, $"scaler-sim-{name}.png"), results);
Console.WriteLine(md);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {Path.Combine(outDir, $"scaler-sim-{name}.md")} and .png"));
return 0;
