package main

import "runtime/debug"

// Works around an upstream bug (wasmtime#14318, componentize-go#77): a garbage
// collection while the bindings copy arguments traps with "cannot leave component
// instance". Collection is off here and runs after each export instead (see
// export_hookhost_plugin_guest). Each call gets a fresh instance anyway.
func init() {
	debug.SetGCPercent(-1)
}
