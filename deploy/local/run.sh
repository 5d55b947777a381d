#!/usr/bin/env bash
# The scale-to-zero loop on this machine: Azurite, the scaler, the gateway, stand-ins for KEDA (with the HPA) and for
# the Kubernetes API whose pods are real app processes on the demo model. Needs the .NET 10 SDK and Node.js (Azurite
# is installed with npm on first use, as the tests do).
#   bash deploy/local/run.sh          # the scenarios, with their figures
#   bash deploy/local/run.sh serve    # bring the loop up and leave it running; Ctrl+C stops it
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build deploy/local/Kiln.LocalCluster -c Release -v quiet -nologo
exec dotnet deploy/local/Kiln.LocalCluster/bin/Release/net10.0/Kiln.LocalCluster.dll "${@:-demo}"
