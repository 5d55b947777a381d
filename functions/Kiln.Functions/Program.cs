// Started by the Functions host: an isolated worker. Started by hand (dotnet run): the same app on Kestrel.
return await Kiln.Functions.KilnApp.RunAsync(args).ConfigureAwait(false);
