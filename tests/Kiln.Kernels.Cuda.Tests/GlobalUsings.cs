global using Kiln.Tests.Infrastructure;
global using Xunit;
