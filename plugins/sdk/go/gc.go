package hookhost

import "runtime/debug"

// Works around an upstream bug (wasmtime#14318, componentize-go#77): a garbage
// collection while the bindings copy arguments traps with "cannot leave component
// instance". Collection is off from the start (this package's init runs before any
// export), so a plugin never repeats this. It is never run at all: the host gives
// every call a fresh instance and drops it afterwards, heap and all, so a
// collection on the way out (what this SDK did before) only cost time, about
// 0.5 ms a call (BENCHMARKS.md). A call's garbage is bounded by the plugin's
// `memory` limit, as it was when collection ran only after the call.
func init() {
	debug.SetGCPercent(-1)
}
