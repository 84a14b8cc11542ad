//! What one call's wasi:http resources cost the host, and the charges held for
//! them by resource index (see the module above for what is charged and why).

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi_http::p2::body::HostFutureTrailers;
use wasmtime_wasi_http::p2::types::{
    HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
};
use wasmtime_wasi_http::FieldMap;

use crate::plugins::host_memory::{BudgetExceeded, Charge, HostMemoryBudget};
use crate::plugins::limits;

/// A table entry's own share: the boxed object and its slot.
pub(super) const ENTRY_COST: usize = 256;
/// A request in flight beyond the request itself: its connection, TLS state and
/// hyper's buffers (the read buffer alone may grow to about 400 KiB), and tasks.
pub(super) const IN_FLIGHT_COST: usize = 512 * 1024;
/// An unsent body: its channel holds `OUTGOING_BODY_BUFFER_CHUNKS + 1` writes
/// of up to `OUTGOING_BODY_CHUNK` bytes, then the trailers it is finished with.
pub(super) const BODY_COST: usize = (limits::OUTGOING_BODY_BUFFER_CHUNKS + 1)
    * limits::OUTGOING_BODY_CHUNK
    + fields_cost(limits::HTTP_FIELD_SIZE_LIMIT);

/// What a header map with `content` bytes of names and values (as wasmtime
/// counts them against the field size limit) may hold: at least the limit, as a
/// mutable map may grow to it, and half again for the map's own structure
/// (measured: 1,000 maps of 56 KiB content took 70 MiB).
pub(super) const fn fields_cost(content: usize) -> usize {
    let content = if content > limits::HTTP_FIELD_SIZE_LIMIT {
        content
    } else {
        limits::HTTP_FIELD_SIZE_LIMIT
    };
    content + content / 2 + ENTRY_COST
}

/// What a received header map holds: no mutable map's minimum, as it cannot grow.
pub(super) fn received_cost(content: usize) -> usize {
    content + content / 2 + ENTRY_COST
}

/// The trailers a response may still receive: hyper's limit for them.
pub(super) const TRAILERS_COST: usize = 16 * 1024 * 3 / 2 + ENTRY_COST;

/// wasmtime-wasi-http's measure of a map's content (`FieldMap::content_size`,
/// which it does not export).
pub(super) fn content_size(map: &HeaderMap) -> usize {
    map.keys()
        .map(|name| name.as_str().len() + size_of::<HeaderName>())
        .sum::<usize>()
        + map
            .values()
            .map(|value| value.len() + size_of::<HeaderValue>())
            .sum::<usize>()
}

/// The charged resource kinds, to tell whether an index still holds one.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Fields,
    OutgoingRequest,
    OutgoingResponse,
    IncomingResponse,
    FutureTrailers,
}

impl Kind {
    pub(super) fn is_live(self, table: &ResourceTable, rep: u32) -> bool {
        fn holds<T: 'static>(table: &ResourceTable, rep: u32) -> bool {
            table.get(&Resource::<T>::new_borrow(rep)).is_ok()
        }
        match self {
            Kind::Fields => holds::<FieldMap>(table, rep),
            Kind::OutgoingRequest => holds::<HostOutgoingRequest>(table, rep),
            Kind::OutgoingResponse => holds::<HostOutgoingResponse>(table, rep),
            Kind::IncomingResponse => holds::<HostIncomingResponse>(table, rep),
            Kind::FutureTrailers => holds::<HostFutureTrailers>(table, rep),
        }
    }
}

/// The separately replaceable parts of a request's or response's charge.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part {
    Entry,
    Headers,
    Body,
    Method,
    Authority,
    Path,
}

pub(super) const PARTS: usize = 6;

struct Held {
    kind: Kind,
    parts: [usize; PARTS],
    charge: Charge,
}

/// The charges of the wasi:http resources in one call's table, by resource index.
pub struct HeldHttpResources {
    budget: Arc<HostMemoryBudget>,
    held: HashMap<u32, Held>,
}

impl HeldHttpResources {
    pub fn new(budget: Arc<HostMemoryBudget>) -> Self {
        Self {
            budget,
            held: HashMap::new(),
        }
    }

    /// Refunds the charges of resources no longer in `table`.
    pub fn release_dropped(&mut self, table: &ResourceTable) {
        self.held.retain(|rep, held| held.kind.is_live(table, *rep));
    }

    /// Charges the resource just created at `rep` for `parts`.
    pub(super) fn hold(
        &mut self,
        table: &ResourceTable,
        rep: u32,
        kind: Kind,
        parts: &[(Part, usize)],
        what: &'static str,
    ) -> Result<(), BudgetExceeded> {
        // Whatever was charged at this index before belongs to a resource that is
        // gone (the table reuses indices).
        self.held.remove(&rep);
        let mut sizes = [0; PARTS];
        for (part, bytes) in parts {
            sizes[*part as usize] = *bytes;
        }
        let total = sizes.iter().sum();
        let charge = match self.budget.charge(what, total) {
            Ok(charge) => charge,
            Err(_) => {
                self.release_dropped(table);
                self.budget.charge(what, total)?
            }
        };
        self.held.insert(
            rep,
            Held {
                kind,
                parts: sizes,
                charge,
            },
        );
        Ok(())
    }

    pub(super) fn hold_fields(
        &mut self,
        table: &ResourceTable,
        fields: &Resource<FieldMap>,
        what: &'static str,
    ) -> wasmtime::Result<()> {
        let content = content_size(table.get(fields)?);
        self.hold(
            table,
            fields.rep(),
            Kind::Fields,
            &[(Part::Entry, fields_cost(content))],
            what,
        )?;
        Ok(())
    }

    /// Replaces one part of the charge of the resource at `rep`.
    pub(super) fn set_part(
        &mut self,
        table: &ResourceTable,
        rep: u32,
        part: Part,
        bytes: usize,
        what: &'static str,
    ) -> Result<(), BudgetExceeded> {
        let resize = |held: &mut Held| {
            let total = held.parts.iter().sum::<usize>() - held.parts[part as usize] + bytes;
            held.charge.resize(what, total)?;
            held.parts[part as usize] = bytes;
            Ok(())
        };
        // Every request and response is held from its constructor on.
        let Some(held) = self.held.get_mut(&rep) else {
            return Ok(());
        };
        if resize(held).is_ok() {
            return Ok(());
        }
        self.release_dropped(table);
        match self.held.get_mut(&rep) {
            Some(held) => resize(held),
            None => Ok(()),
        }
    }

    /// The charge of a request being sent, grown by what a request in flight
    /// holds; the request itself is leaving the table.
    pub fn send(&mut self, table: &ResourceTable, rep: u32) -> Result<Charge, BudgetExceeded> {
        let mut charge = match self.held.remove(&rep) {
            Some(held) => held.charge,
            None => self.budget.empty_charge(),
        };
        const WHAT: &str = "a request in flight";
        if charge.grow(WHAT, IN_FLIGHT_COST).is_err() {
            self.release_dropped(table);
            charge.grow(WHAT, IN_FLIGHT_COST)?;
        }
        Ok(charge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_in(table: &mut ResourceTable) -> Resource<FieldMap> {
        table
            .push(FieldMap::new_mutable(limits::HTTP_FIELD_SIZE_LIMIT))
            .unwrap()
    }

    #[test]
    fn a_charge_is_refunded_once_its_resource_has_left_the_table() {
        let per_fields = fields_cost(0);
        let budget = HostMemoryBudget::new("p".into(), 3 * per_fields);
        let mut held = HeldHttpResources::new(budget.clone());
        let mut table = ResourceTable::new();
        let kept: Vec<_> = (0..3)
            .map(|_| {
                let fields = fields_in(&mut table);
                held.hold_fields(&table, &fields, "a new fields").unwrap();
                fields
            })
            .collect();
        assert_eq!(budget.used(), 3 * per_fields);
        let fourth = fields_in(&mut table);
        let error = held
            .hold_fields(&table, &fourth, "a new fields")
            .unwrap_err();
        assert!(error.is::<BudgetExceeded>(), "{error:?}");

        // Once one has gone, by whatever route, its charge pays for the next.
        table
            .delete(Resource::<FieldMap>::new_own(kept[0].rep()))
            .unwrap();
        held.hold_fields(&table, &fourth, "a new fields").unwrap();
        assert_eq!(budget.used(), 3 * per_fields);
    }

    #[test]
    fn an_index_reused_by_another_kind_of_resource_frees_its_charge() {
        let budget = HostMemoryBudget::new("p".into(), 1 << 20);
        let mut held = HeldHttpResources::new(budget.clone());
        let mut table = ResourceTable::new();
        let fields = fields_in(&mut table);
        held.hold_fields(&table, &fields, "a new fields").unwrap();
        table
            .delete(Resource::<FieldMap>::new_own(fields.rep()))
            .unwrap();
        let other = table.push(7u64).unwrap();
        assert_eq!(other.rep(), fields.rep(), "the table reuses the index");
        held.release_dropped(&table);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_request_s_parts_are_replaced_not_added_and_move_into_the_send() {
        let budget = HostMemoryBudget::new("p".into(), 8 << 20);
        let mut held = HeldHttpResources::new(budget.clone());
        let mut table = ResourceTable::new();
        // Any live entry will do for the index; the kind is only checked when
        // the budget runs short.
        let rep = fields_in(&mut table).rep();
        held.hold(
            &table,
            rep,
            Kind::Fields,
            &[(Part::Entry, ENTRY_COST)],
            "a request",
        )
        .unwrap();
        for _ in 0..10 {
            held.set_part(&table, rep, Part::Authority, 1 << 20, "an authority")
                .unwrap();
        }
        assert_eq!(budget.used(), ENTRY_COST + (1 << 20));
        let sending = held.send(&table, rep).unwrap();
        assert_eq!(sending.bytes(), ENTRY_COST + (1 << 20) + IN_FLIGHT_COST);
        drop(sending);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_full_mutable_fields_is_charged_more_than_its_content() {
        let mut map = HeaderMap::new();
        for i in 0..56 {
            map.append(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_bytes(&[b'v'; 1024]).unwrap(),
            );
        }
        let content = content_size(&map);
        assert!(content < limits::HTTP_FIELD_SIZE_LIMIT, "{content}");
        assert!(fields_cost(content) >= limits::HTTP_FIELD_SIZE_LIMIT * 5 / 4);
        // A larger (received) map is charged for what it holds.
        assert!(fields_cost(4 * limits::HTTP_FIELD_SIZE_LIMIT) > 4 * limits::HTTP_FIELD_SIZE_LIMIT);
    }
}
