//! The shared SQL core: everything the SQLite and PostgreSQL backends have in
//! common, written once.
//!
//! The logic of every write and read is an `async fn` over `conn::Sql`, a small
//! trait for "run this statement with these parameters", which each backend
//! implements for its driver. PostgreSQL's (tokio-postgres) awaits the server;
//! SQLite's (rusqlite) runs each statement when it is called and hands back a
//! finished future, so the writer thread drives the same code with
//! `conn::run_now`, an executor that polls once and never waits.
//!
//! Statements are written once, in PostgreSQL's placeholder style (`$1`), which
//! SQLite also parses; SQLite's side binds them by name. Where the two databases
//! genuinely differ, the core says so beside the statement (`Dialect`): row locks
//! that PostgreSQL needs because several nodes write at once, and SQLite, whose one
//! writer holds the whole database, does not; and a claim that PostgreSQL makes in
//! one statement and SQLite in two.
//!
//! - `conn`: the `Sql` trait, parameters, rows, the dialect.
//! - `clock`: the database's clock, which decides leases and due times.
//! - `poll_share`: a node's round of poll leases, spread over the fleet.
//! - `rows`: column lists and row decoding.
//! - `records`: persisting an ingest or a poll record, and state changes.
//! - `writes`: every write as data (`Write`), run by a backend's writer.
//! - `reads`: every read as data (`Read`), listing filters included.
//! - `group`: group commit's bound and how a group's callers are answered.
//! - `impls`: the narrow store traits, implemented once for any `SqlBackend`.

pub mod clock;
pub mod conn;
pub mod group;
pub mod impls;
pub mod poll_share;
pub mod reads;
pub mod records;
pub mod rows;
pub mod writes;
