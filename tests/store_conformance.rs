//! The store's contract, run against both backends: SQLite in a temp dir and
//! PostgreSQL on a real throwaway server (tests/common/postgres.rs).

mod common;

use common::postgres::Postgres;

/// The harness itself: a cluster keeps its data across a stop and a start on the
/// same port, and refuses connections while stopped.
#[tokio::test(flavor = "multi_thread")]
async fn the_test_server_keeps_its_data_across_a_restart_on_the_same_port() {
    let mut server = Postgres::start();
    let url = server.url();
    let client = connect(&url).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7);")
        .await
        .unwrap();
    drop(client);
    server.stop();
    assert!(connect(&url).await.is_err());
    server.start_again();
    let client = connect(&url).await.unwrap();
    let row = client.query_one("SELECT n FROM kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
