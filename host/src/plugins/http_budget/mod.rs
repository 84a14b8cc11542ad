//! The wasi:http functions through which a guest makes the host hold memory,
//! linked over wasmtime-wasi-http's own (same names, `Linker::allow_shadowing`) so
//! that the call's `HostMemoryBudget` pays for what they keep. Each wrapper calls
//! the original implementation, then charges the resource it created or changed;
//! going over the budget traps the call (see `host_memory`).
//!
//! What is charged, per live resource:
//! - `fields` (made by the constructor, `from-list`, `clone`, the `headers` views
//!   of requests and responses, and received trailers): the larger of its content
//!   and `HTTP_FIELD_SIZE_LIMIT` (a mutable one may grow to that), plus the header
//!   map's own overhead. A view shares its map with the request or response, but
//!   outlives it when that is dropped, so it pays in full.
//! - `outgoing-request` and `outgoing-response`: their headers (moved in from a
//!   `fields`), method, authority and path strings (wasmtime keeps them as given,
//!   with no length limit on the first two), and, once `body` is called, the
//!   body's buffer: the receiving end of its channel, which the request owns,
//!   holds what the guest wrote and the trailers it finished with.
//! - `outgoing-handler.handle`: the request's charge moves into the send, plus
//!   `IN_FLIGHT_COST` for the connection; `outbound` keeps it until the response
//!   body and the connection are dropped.
//! - `incoming-response` (from `future-incoming-response.get`): its headers, as
//!   received (hyper allows about 400 KiB), which it keeps after its body and
//!   connection are gone; `future-trailers` (from `incoming-body.finish`): the
//!   trailers it may receive (hyper allows 16 KiB).
//!
//! A charge is refunded when its resource leaves the table, however it left
//! (dropped, consumed by another call, or the call ended): charges are kept by
//! resource index and checked against the table when the budget runs short, so
//! no drop has to be intercepted.

use wasmtime::component::{ComponentNamedList, Lift, Linker, Lower, Resource};
use wasmtime::StoreContextMut;
use wasmtime::{bail, format_err};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::{
    self as wasi_types, ErrorCode, HeaderError, Method,
};
use wasmtime_wasi_http::p2::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{FieldMap, RequestOptions, WasiHttpCtxView, WasiHttpView};

use crate::plugins::call_state::CallState;
use crate::plugins::limits;

pub mod held;

use held::*;

/// The interfaces wrapped here, under the names wasmtime-wasi-http links them
/// with (its WIT's version). Components importing any 0.2.x version reach them.
const TYPES: &str = "wasi:http/types@0.2.12";
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Links the wrappers over wasmtime-wasi-http's functions of the same names;
/// call after `add_only_http_to_linker_async`.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    let linked = link(linker);
    linker.allow_shadowing(false);
    linked
}

/// Links `func` over the function `name` of `instance`. Fails if wasmtime-wasi-http
/// did not link that function (an upgrade renamed it, say), rather than adding one
/// that nothing calls and leaving the original unbudgeted.
fn wrap<F, Params, Return>(
    linker: &mut Linker<CallState>,
    instance: &str,
    name: &str,
    func: F,
) -> wasmtime::Result<()>
where
    F: Fn(StoreContextMut<'_, CallState>, Params) -> wasmtime::Result<Return>
        + Send
        + Sync
        + 'static,
    Params: ComponentNamedList + Lift + 'static,
    Return: ComponentNamedList + Lower + 'static,
{
    linker.allow_shadowing(false);
    let probe = linker
        .instance(instance)?
        .func_wrap(name, |_: StoreContextMut<'_, CallState>, (): ()| Ok(()));
    if probe.is_ok() {
        bail!("wasmtime-wasi-http links no `{name}` in `{instance}` for the host memory budget to wrap");
    }
    linker.allow_shadowing(true);
    linker.instance(instance)?.func_wrap(name, func)
}

fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wrap(linker, TYPES, "[constructor]fields", |mut store, (): ()| {
        let (mut http, held) = store.data_mut().http_and_held();
        let fields = wasi_types::HostFields::new(&mut http)?;
        held.hold_fields(http.table, &fields, "a new fields")?;
        Ok((fields,))
    })?;

    wrap(
        linker,
        TYPES,
        "[static]fields.from-list",
        |mut store, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let fields = match wasi_types::HostFields::from_list(&mut http, entries) {
                Ok(fields) => fields,
                Err(error) => {
                    let error: HeaderError =
                        wasi_types::Host::convert_header_error(&mut http, error)?;
                    return Ok((Err(error),));
                }
            };
            held.hold_fields(http.table, &fields, "a new fields")?;
            Ok((Ok(fields),))
        },
    )?;

    wrap_new_fields(
        linker,
        "[method]fields.clone",
        "a copy of fields",
        |http, fields| wasi_types::HostFields::clone(http, fields),
    )?;
    wrap_new_fields(
        linker,
        "[method]outgoing-request.headers",
        "a request's headers",
        |http, request| wasi_types::HostOutgoingRequest::headers(http, request),
    )?;
    wrap_new_fields(
        linker,
        "[method]outgoing-response.headers",
        "a response's headers",
        |http, response| wasi_types::HostOutgoingResponse::headers(http, response),
    )?;
    wrap_new_fields(
        linker,
        "[method]incoming-response.headers",
        "a response's headers",
        |http, response| wasi_types::HostIncomingResponse::headers(http, response),
    )?;

    wrap(
        linker,
        TYPES,
        "[method]future-trailers.get",
        |mut store, (trailers,): (Resource<HostFutureTrailers>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let got = wasi_types::HostFutureTrailers::get(&mut http, trailers)?;
            if let Some(Ok(Ok(Some(fields)))) = &got {
                held.hold_fields(http.table, fields, "received trailers")?;
            }
            Ok((got,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]future-incoming-response.get",
        |mut store, (future,): (Resource<HostFutureIncomingResponse>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let got = wasi_types::HostFutureIncomingResponse::get(&mut http, future)?;
            if let Some(Ok(Ok(response))) = &got {
                let headers = content_size(&http.table.get(response)?.headers);
                held.hold(
                    http.table,
                    response.rep(),
                    Kind::IncomingResponse,
                    &[(Part::Headers, received_cost(headers))],
                    "a received response",
                )?;
            }
            Ok((got,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[static]incoming-body.finish",
        |mut store, (body,): (Resource<HostIncomingBody>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let trailers = wasi_types::HostIncomingBody::finish(&mut http, body)?;
            held.hold(
                http.table,
                trailers.rep(),
                Kind::FutureTrailers,
                &[(Part::Entry, TRAILERS_COST)],
                "a response's trailers",
            )?;
            Ok((trailers,))
        },
    )?;

    wrap_constructor(
        linker,
        "[constructor]outgoing-request",
        Kind::OutgoingRequest,
        "a new outgoing-request",
        |http, headers| wasi_types::HostOutgoingRequest::new(http, headers),
    )?;
    wrap_body(
        linker,
        "[method]outgoing-request.body",
        "an outgoing-request's body",
        |http, request| wasi_types::HostOutgoingRequest::body(http, request),
    )?;
    wrap_setter(
        linker,
        "[method]outgoing-request.set-method",
        Part::Method,
        "an outgoing-request's method",
        |method: &Method| match method {
            Method::Other(name) => name.len(),
            _ => 0,
        },
        |http, request, method| wasi_types::HostOutgoingRequest::set_method(http, request, method),
    )?;
    wrap_setter(
        linker,
        "[method]outgoing-request.set-authority",
        Part::Authority,
        "an outgoing-request's authority",
        |authority: &Option<String>| authority.as_ref().map_or(0, String::len),
        |http, request, authority| {
            wasi_types::HostOutgoingRequest::set_authority(http, request, authority)
        },
    )?;
    wrap_setter(
        linker,
        "[method]outgoing-request.set-path-with-query",
        Part::Path,
        "an outgoing-request's path",
        |path: &Option<String>| path.as_ref().map_or(0, String::len),
        |http, request, path| {
            wasi_types::HostOutgoingRequest::set_path_with_query(http, request, path)
        },
    )?;

    wrap_constructor(
        linker,
        "[constructor]outgoing-response",
        Kind::OutgoingResponse,
        "a new outgoing-response",
        |http, headers| wasi_types::HostOutgoingResponse::new(http, headers),
    )?;
    wrap_body(
        linker,
        "[method]outgoing-response.body",
        "an outgoing-response's body",
        |http, response| wasi_types::HostOutgoingResponse::body(http, response),
    )?;

    // Trailers move into the body's owner, whose body charge counts them at up
    // to the field size limit; only a received map (a `headers` view of an
    // incoming response) can be larger, and is refused.
    wrap(
        linker,
        TYPES,
        "[static]outgoing-body.finish",
        |mut store, (body, trailers): (Resource<HostOutgoingBody>, Option<Resource<FieldMap>>)| {
            let (mut http, _) = store.data_mut().http_and_held();
            if let Some(trailers) = &trailers {
                let content = content_size(http.table.get(trailers)?);
                if content > limits::HTTP_FIELD_SIZE_LIMIT {
                    return Err(format_err!(
                        "outgoing-body trailers of {content} bytes are above the field size limit of {} bytes",
                        limits::HTTP_FIELD_SIZE_LIMIT
                    ));
                }
            }
            let finished = match wasi_types::HostOutgoingBody::finish(&mut http, body, trailers) {
                Ok(()) => Ok(()),
                Err(error) => Err(wasi_types::Host::convert_error_code(&mut http, error)?),
            };
            Ok((finished,))
        },
    )?;

    wrap(
        linker,
        OUTGOING_HANDLER,
        "handle",
        |mut store,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )|
         -> wasmtime::Result<(Result<Resource<HostFutureIncomingResponse>, ErrorCode>,)> {
            let state = store.data_mut();
            state.reserve_send(request.rep())?;
            let mut http = state.http();
            let sent = match outgoing_handler::Host::handle(&mut http, request, options) {
                Ok(response) => Ok(response),
                Err(error) => Err(wasi_types::Host::convert_error_code(&mut http, error)?),
            };
            state.release_unsent();
            Ok((sent,))
        },
    )?;
    Ok(())
}

/// Wraps a function that makes a new `fields` from a `from` resource (a copy, or a
/// view of a request's or response's headers), charging it as `what`.
fn wrap_new_fields<From: 'static>(
    linker: &mut Linker<CallState>,
    name: &str,
    what: &'static str,
    make: impl Fn(&mut WasiHttpCtxView<'_>, Resource<From>) -> wasmtime::Result<Resource<FieldMap>>
        + Send
        + Sync
        + 'static,
) -> wasmtime::Result<()> {
    wrap(
        linker,
        TYPES,
        name,
        move |mut store, (from,): (Resource<From>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let fields = make(&mut http, from)?;
            held.hold_fields(http.table, &fields, what)?;
            Ok((fields,))
        },
    )
}

/// Wraps the constructor of a request or response (`kind`), which takes in a
/// `fields` for its headers: the new resource pays for its entry and those headers.
fn wrap_constructor<Made: 'static>(
    linker: &mut Linker<CallState>,
    name: &str,
    kind: Kind,
    what: &'static str,
    new: impl Fn(&mut WasiHttpCtxView<'_>, Resource<FieldMap>) -> wasmtime::Result<Resource<Made>>
        + Send
        + Sync
        + 'static,
) -> wasmtime::Result<()> {
    wrap(
        linker,
        TYPES,
        name,
        move |mut store, (headers,): (Resource<FieldMap>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers_cost = fields_cost(content_size(http.table.get(&headers)?));
            let made = new(&mut http, headers)?;
            held.hold(
                http.table,
                made.rep(),
                kind,
                &[(Part::Entry, ENTRY_COST), (Part::Headers, headers_cost)],
                what,
            )?;
            Ok((made,))
        },
    )
}

/// Wraps the `body` method of a request or response: once it hands out the body,
/// its owner pays for the body's buffer.
fn wrap_body<Owner: 'static>(
    linker: &mut Linker<CallState>,
    name: &str,
    what: &'static str,
    open: impl Fn(
            &mut WasiHttpCtxView<'_>,
            Resource<Owner>,
        ) -> wasmtime::Result<Result<Resource<HostOutgoingBody>, ()>>
        + Send
        + Sync
        + 'static,
) -> wasmtime::Result<()> {
    wrap(
        linker,
        TYPES,
        name,
        move |mut store, (owner,): (Resource<Owner>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = owner.rep();
            let body = open(&mut http, owner)?;
            if body.is_ok() {
                held.set_part(http.table, rep, Part::Body, BODY_COST, what)?;
            }
            Ok((body,))
        },
    )
}

/// Wraps a setter of an outgoing request's string `part`: once the value is set,
/// the request pays its `bytes`, charged as `what`.
fn wrap_setter<Value: Lift + Send + Sync + 'static>(
    linker: &mut Linker<CallState>,
    name: &str,
    part: Part,
    what: &'static str,
    bytes: fn(&Value) -> usize,
    set: impl Fn(
            &mut WasiHttpCtxView<'_>,
            Resource<HostOutgoingRequest>,
            Value,
        ) -> wasmtime::Result<Result<(), ()>>
        + Send
        + Sync
        + 'static,
) -> wasmtime::Result<()> {
    wrap(
        linker,
        TYPES,
        name,
        move |mut store, (request, value): (Resource<HostOutgoingRequest>, Value)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = request.rep();
            let size = bytes(&value);
            let set = set(&mut http, request, value)?;
            if set.is_ok() {
                held.set_part(http.table, rep, part, size, what)?;
            }
            Ok((set,))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrapper_replaces_a_function_wasmtime_wasi_http_links() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<CallState>::new(&engine);
        let error = add_to_linker(&mut linker).unwrap_err();
        assert!(error.to_string().contains("links no `"), "{error}");

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        add_to_linker(&mut linker).unwrap();
        // Shadowing is off again for whatever is linked next.
        let again = linker
            .instance(TYPES)
            .unwrap()
            .func_wrap("[constructor]fields", |_, (): ()| Ok(()));
        assert!(again.is_err());
    }
}
