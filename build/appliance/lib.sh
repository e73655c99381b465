# lib.sh - small helpers shared by the appliance build scripts (sourced, not run).
die() { echo "appliance build: $*" >&2; exit 1; }
warn() { echo "appliance build: warning: $*" >&2; }
step() { echo "appliance build: [$(date -u +%H:%M:%S)] $*"; }
