using Kiln.LocalCluster;

return await LocalClusterCommand.RunAsync(args);
