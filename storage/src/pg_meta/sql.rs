//! Thin helpers over the driver: every statement is prepared once per
//! connection (the pool keeps a statement cache) and its errors mapped in
//! errors.rs.

use super::errors::db;
use crate::Result;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(super) async fn exec(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.execute(&stmt, params).await.map_err(db)
}

pub(super) async fn rows(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query(&stmt, params).await.map_err(db)
}

pub(super) async fn opt(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query_opt(&stmt, params).await.map_err(db)
}

pub(super) async fn one(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Row> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query_one(&stmt, params).await.map_err(db)
}

/// The first column of every row, as strings.
pub(super) async fn strings(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<String>> {
    Ok(rows(c, sql, params)
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}

/// Unix seconds as stored; times past 2^63 cannot occur.
pub(super) fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A stored time or count back as u64; never negative by construction.
pub(super) fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
