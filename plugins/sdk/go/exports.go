package hookhost

import (
	types "wit_component/hookhost_plugin_types"

	wit "go.bytecodealliance.org/pkg/wit/types"
)

// Failure is an error that refuses a call with one case of `plugin-error`; any
// other error a handler returns becomes `internal` with its text.
type Failure struct {
	value   types.PluginError
	message string
}

func (f *Failure) Error() string { return f.message }

// Unauthorized: the request is not authentic (HTTP 401).
func Unauthorized(message string) error {
	return &Failure{types.MakePluginErrorUnauthorized(message), message}
}

// BadRequest: the request is malformed (HTTP 400).
func BadRequest(message string) error {
	return &Failure{types.MakePluginErrorBadRequest(message), message}
}

// Unavailable: something the plugin depends on is down; the caller should retry (HTTP 503).
func Unavailable(message string) error {
	return &Failure{types.MakePluginErrorUnavailable(message), message}
}

// Internal: a bug or a setup mistake in the plugin (HTTP 500).
func Internal(message string) error {
	return &Failure{types.MakePluginErrorInternal(message), message}
}

func pluginError(err error) types.PluginError {
	if failure, ok := err.(*Failure); ok {
		return failure.value
	}
	return types.MakePluginErrorInternal(err.Error())
}

// The exports a plugin's package `export_hookhost_plugin_guest` assigns, so that
// the generated bindings call them:
//
//	var (
//		HandleWebhook = hookhost.WebhookExport(handle)
//		Poll          = hookhost.DoesNotPoll("acme")
//		OnEvent       = hookhost.HandlesNoEvents("acme")
//	)
//
// None of them collects garbage (see gc.go).

// WebhookExport is the `handle-webhook` export calling handle.
func WebhookExport(handle func(Request) (Outcome, error)) func(Request) wit.Result[Outcome, types.PluginError] {
	return func(request Request) wit.Result[Outcome, types.PluginError] {
		outcome, err := handle(request)
		if err != nil {
			return wit.Err[Outcome](pluginError(err))
		}
		return wit.Ok[Outcome, types.PluginError](outcome)
	}
}

// PollExport is the `poll` export calling poll.
func PollExport(poll func(cursor wit.Option[string]) (PollOutcome, error)) func(wit.Option[string]) wit.Result[PollOutcome, types.PluginError] {
	return func(cursor wit.Option[string]) wit.Result[PollOutcome, types.PluginError] {
		outcome, err := poll(cursor)
		if err != nil {
			return wit.Err[PollOutcome](pluginError(err))
		}
		return wit.Ok[PollOutcome, types.PluginError](outcome)
	}
}

// OnEventExport is the `on-event` export calling handle.
func OnEventExport(handle func(StoredEvent) error) func(StoredEvent) wit.Result[wit.Unit, types.PluginError] {
	return func(event StoredEvent) wit.Result[wit.Unit, types.PluginError] {
		if err := handle(event); err != nil {
			return wit.Err[wit.Unit](pluginError(err))
		}
		return wit.Ok[wit.Unit, types.PluginError](wit.Unit{})
	}
}

// DoesNotPoll is the `poll` export of a plugin that does not poll:
// `internal("<id> does not poll")`.
func DoesNotPoll(id string) func(wit.Option[string]) wit.Result[PollOutcome, types.PluginError] {
	return func(wit.Option[string]) wit.Result[PollOutcome, types.PluginError] {
		return wit.Err[PollOutcome](types.MakePluginErrorInternal(id + " does not poll"))
	}
}

// HandlesNoEvents is the `on-event` export of a plugin that subscribes to nothing:
// `internal("<id> subscribes to no events")`.
func HandlesNoEvents(id string) func(StoredEvent) wit.Result[wit.Unit, types.PluginError] {
	return func(StoredEvent) wit.Result[wit.Unit, types.PluginError] {
		return wit.Err[wit.Unit](types.MakePluginErrorInternal(id + " subscribes to no events"))
	}
}

// Describes is the `describe` export of a plugin whose manifest is the same on
// every load: `Describe = hookhost.Describes(hookhost.WebhookManifest(...))`. A
// plugin that computes its manifest declares `func Describe() hookhost.Manifest`.
func Describes(manifest Manifest) func() Manifest {
	return func() Manifest { return manifest }
}

// WebhookManifest is what `describe` returns for a plugin that neither polls nor
// subscribes to events.
func WebhookManifest(name, version, description string, emits ...string) Manifest {
	return Manifest{
		Name:                name,
		Version:             version,
		Description:         description,
		Emits:               emits,
		PollIntervalSeconds: wit.None[uint32](),
		Subscriptions:       []string{},
	}
}
