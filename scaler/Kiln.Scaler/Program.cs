using Kiln.Scaler;

// The KEDA external scaler for Kiln: configuration from appsettings, env vars (Scaler__GrpcPort, ...) or arguments.
await ScalerHost.Build(args).RunAsync();
