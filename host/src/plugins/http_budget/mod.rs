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
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
};
use wasmtime_wasi_http::{FieldMap, RequestOptions, WasiHttpView};

use crate::plugins::call_state::PluginState;
use crate::plugins::limits;

pub mod held;

use held::*;

/// The interfaces wrapped here, under the names wasmtime-wasi-http links them
/// with (its WIT's version). Components importing any 0.2.x version reach them.
const TYPES: &str = "wasi:http/types@0.2.12";
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Links the wrappers over wasmtime-wasi-http's functions of the same names;
/// call after `add_only_http_to_linker_async`.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    let linked = link(linker);
    linker.allow_shadowing(false);
    linked
}

/// Links `func` over the function `name` of `instance`. Fails if wasmtime-wasi-http
/// did not link that function (an upgrade renamed it, say), rather than adding one
/// that nothing calls and leaving the original unbudgeted.
fn wrap<F, Params, Return>(
    linker: &mut Linker<PluginState>,
    instance: &str,
    name: &str,
    func: F,
) -> wasmtime::Result<()>
where
    F: Fn(StoreContextMut<'_, PluginState>, Params) -> wasmtime::Result<Return>
        + Send
        + Sync
        + 'static,
    Params: ComponentNamedList + Lift + 'static,
    Return: ComponentNamedList + Lower + 'static,
{
    linker.allow_shadowing(false);
    let probe = linker
        .instance(instance)?
        .func_wrap(name, |_: StoreContextMut<'_, PluginState>, (): ()| Ok(()));
    if probe.is_ok() {
        bail!("wasmtime-wasi-http links no `{name}` in `{instance}` for the host memory budget to wrap");
    }
    linker.allow_shadowing(true);
    linker.instance(instance)?.func_wrap(name, func)
}

fn link(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
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

    wrap(
        linker,
        TYPES,
        "[method]fields.clone",
        |mut store, (fields,): (Resource<FieldMap>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let copy = wasi_types::HostFields::clone(&mut http, fields)?;
            held.hold_fields(http.table, &copy, "a copy of fields")?;
            Ok((copy,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-request.headers",
        |mut store, (request,): (Resource<HostOutgoingRequest>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers = wasi_types::HostOutgoingRequest::headers(&mut http, request)?;
            held.hold_fields(http.table, &headers, "a request's headers")?;
            Ok((headers,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-response.headers",
        |mut store, (response,): (Resource<HostOutgoingResponse>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers = wasi_types::HostOutgoingResponse::headers(&mut http, response)?;
            held.hold_fields(http.table, &headers, "a response's headers")?;
            Ok((headers,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]incoming-response.headers",
        |mut store, (response,): (Resource<HostIncomingResponse>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers = wasi_types::HostIncomingResponse::headers(&mut http, response)?;
            held.hold_fields(http.table, &headers, "a response's headers")?;
            Ok((headers,))
        },
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

    wrap(
        linker,
        TYPES,
        "[constructor]outgoing-request",
        |mut store, (headers,): (Resource<FieldMap>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers_cost = fields_cost(content_size(http.table.get(&headers)?));
            let request = wasi_types::HostOutgoingRequest::new(&mut http, headers)?;
            held.hold(
                http.table,
                request.rep(),
                Kind::OutgoingRequest,
                &[(Part::Entry, ENTRY_COST), (Part::Headers, headers_cost)],
                "a new outgoing-request",
            )?;
            Ok((request,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-request.body",
        |mut store, (request,): (Resource<HostOutgoingRequest>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = request.rep();
            let body = wasi_types::HostOutgoingRequest::body(&mut http, request)?;
            if body.is_ok() {
                held.set_part(
                    http.table,
                    rep,
                    Part::Body,
                    BODY_COST,
                    "an outgoing-request's body",
                )?;
            }
            Ok((body,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-request.set-method",
        |mut store, (request, method): (Resource<HostOutgoingRequest>, Method)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = request.rep();
            let bytes = match &method {
                Method::Other(name) => name.len(),
                _ => 0,
            };
            let set = wasi_types::HostOutgoingRequest::set_method(&mut http, request, method)?;
            if set.is_ok() {
                held.set_part(
                    http.table,
                    rep,
                    Part::Method,
                    bytes,
                    "an outgoing-request's method",
                )?;
            }
            Ok((set,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-request.set-authority",
        |mut store, (request, authority): (Resource<HostOutgoingRequest>, Option<String>)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = request.rep();
            let bytes = authority.as_ref().map_or(0, String::len);
            let set =
                wasi_types::HostOutgoingRequest::set_authority(&mut http, request, authority)?;
            if set.is_ok() {
                held.set_part(
                    http.table,
                    rep,
                    Part::Authority,
                    bytes,
                    "an outgoing-request's authority",
                )?;
            }
            Ok((set,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-request.set-path-with-query",
        |mut store, (request, path): (Resource<HostOutgoingRequest>, Option<String>)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = request.rep();
            let bytes = path.as_ref().map_or(0, String::len);
            let set =
                wasi_types::HostOutgoingRequest::set_path_with_query(&mut http, request, path)?;
            if set.is_ok() {
                held.set_part(
                    http.table,
                    rep,
                    Part::Path,
                    bytes,
                    "an outgoing-request's path",
                )?;
            }
            Ok((set,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[constructor]outgoing-response",
        |mut store, (headers,): (Resource<FieldMap>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let headers_cost = fields_cost(content_size(http.table.get(&headers)?));
            let response = wasi_types::HostOutgoingResponse::new(&mut http, headers)?;
            held.hold(
                http.table,
                response.rep(),
                Kind::OutgoingResponse,
                &[(Part::Entry, ENTRY_COST), (Part::Headers, headers_cost)],
                "a new outgoing-response",
            )?;
            Ok((response,))
        },
    )?;

    wrap(
        linker,
        TYPES,
        "[method]outgoing-response.body",
        |mut store, (response,): (Resource<HostOutgoingResponse>,)| {
            let (mut http, held) = store.data_mut().http_and_held();
            let rep = response.rep();
            let body = wasi_types::HostOutgoingResponse::body(&mut http, response)?;
            if body.is_ok() {
                held.set_part(
                    http.table,
                    rep,
                    Part::Body,
                    BODY_COST,
                    "an outgoing-response's body",
                )?;
            }
            Ok((body,))
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrapper_replaces_a_function_wasmtime_wasi_http_links() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<PluginState>::new(&engine);
        let error = add_to_linker(&mut linker).unwrap_err();
        assert!(error.to_string().contains("links no `"), "{error}");

        let mut linker = Linker::<PluginState>::new(&engine);
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
