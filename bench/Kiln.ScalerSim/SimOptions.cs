using System.Globalization;

namespace Kiln.ScalerSim;

/// <summary>Simulation parameters; every one settable as <c>--name value</c>.</summary>
public sealed class SimOptions
{
    public string Trace { get; set; } = "";
    public double Step { get; set; } = 0.1;                // s per simulation step
    public double ColdStart { get; set; } = 60;            // s from scheduled to ready (image + weights)
    public double Throughput { get; set; } = 2500;         // tokens/s one replica processes (prompt + output)
    public int MaxSeqs { get; set; } = 32;                 // running sequences per replica
    public int Groups { get; set; } = 8;                   // TP groups in the cluster
    public int TpSize { get; set; } = 2;                   // GPUs per replica
    public double Target { get; set; } = 32768;            // Kiln: token backlog per replica (~ a full batch: 32 x ~1.4k tokens)
    public double Activation { get; set; }                 // Kiln: activation threshold (tokens)
    public double WaitingTarget { get; set; } = 5;         // baseline: waiting requests per replica
    public double Poll { get; set; } = 15;                 // s between KEDA polls / HPA syncs
    public double Cooldown { get; set; } = 300;            // s inactive before scaling to zero
    public double Tolerance { get; set; } = 0.1;           // HPA tolerance
    public double Stabilization { get; set; } = 300;       // s HPA scale-down stabilization window
    public bool Push { get; set; } = true;                 // Kiln: external-push activation (StreamIsActive, 0.25 s)
    public int MaxReplicas { get; set; } = 64;
    public string Out { get; set; } = "";

    public static SimOptions Parse(string[] args)
    {
        var o = new SimOptions();
        var props = typeof(SimOptions).GetProperties().ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || !props.TryGetValue(args[i][2..].Replace("-", "", StringComparison.Ordinal), out var p) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"unknown option or missing value: {args[i]}\n{Usage}");
            }

            var v = args[++i];
            p.SetValue(o, p.PropertyType == typeof(string) ? v : Convert.ChangeType(v, p.PropertyType, CultureInfo.InvariantCulture));
        }

        return o;
    }

    public const string Usage =
        "kiln-scalersim sim [--trace CSV] [--cold-start 60] [--throughput 2500] [--max-seqs 32] [--groups 8] [--tp-size 2]\n" +
        "                   [--target 32768] [--activation 0] [--waiting-target 5] [--poll 15] [--cooldown 300] [--tolerance 0.1]\n" +
        "                   [--stabilization 300] [--push true] [--max-replicas 64] [--step 0.1] [--out bench/results]\n" +
        "kiln-scalersim bench [--objects 100] [--calls 2000] [--concurrency 8] [--rate 50]";
}
