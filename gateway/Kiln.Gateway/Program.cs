using Kiln.Gateway;

// The gateway, standalone: settings from the Gateway section (appsettings, Gateway__X, --Gateway:X=), address from
// --urls / ASPNETCORE_URLS (the container image's default port is 8080).
WebApplication app;
try
{
    app = GatewayHost.Build(args);
}
catch (InvalidOperationException e)
{
    await Console.Error.WriteLineAsync($"kiln-gateway: error: {e.Message}");
    return 2;
}

await app.RunAsync();
return 0;
