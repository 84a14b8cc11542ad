package hookhost

import "runtime/debug"

// Works around an upstream bug (wasmtime#14318, componentize-go#77): a garbage
// collection while the bindings copy arguments traps with "cannot leave component
// instance". Collection is off from the start (this package's init runs before any
// export) and runs after each export instead (see exports.go), so a plugin never
// repeats this. Each call gets a fresh instance anyway.
func init() {
	debug.SetGCPercent(-1)
}
