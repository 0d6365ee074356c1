//! The conformance suite on PostgreSQL, one fresh database per case on one
//! server per test process.

use super::{PostgresMetadata, PostgresSettings};
use crate::conformance::postgres::TestPostgres;
use std::sync::OnceLock;
use std::time::Duration;

/// The process's test server, started on first use.
pub(super) fn server() -> &'static TestPostgres {
    static SERVER: OnceLock<TestPostgres> = OnceLock::new();
    SERVER.get_or_init(TestPostgres::start)
}

pub(super) fn settings(url: String) -> PostgresSettings {
    PostgresSettings {
        url,
        pool_size: 4,
        statement_timeout: Duration::from_secs(30),
    }
}

/// A store on a fresh database named after `case`.
pub(super) async fn store(case: &str) -> PostgresMetadata {
    let url = server().create_database(case);
    PostgresMetadata::connect(&settings(url))
        .await
        .expect("connect")
}

crate::metadata_conformance_tests!(|case| ((), Box::new(super::tests::store(case).await)));

mod inventory {
    crate::inventory_conformance_tests!(|case| ((), Box::new(super::store(case).await)));
}

mod origins {
    crate::origin_conformance_tests!(|case| ((), Box::new(super::store(case).await)));
}

#[tokio::test]
async fn browsing_reads() {
    crate::conformance::browse(&store("browsing_reads").await).await;
}
