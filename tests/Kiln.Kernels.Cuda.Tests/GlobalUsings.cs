global using Xunit;
global using Kiln.Tests.Infrastructure;
