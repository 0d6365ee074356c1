//! Garbage-collection tests specific to PostgreSQL.
