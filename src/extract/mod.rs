//! Extracts: the data contract ([`contract`]) and opening a data directory against it. Every file
//! is held to the contract when it is opened — columns, types, nulls, coded values — and a broken
//! rule is an error naming the file, the column, and the row or the expected and found types.
//! Claim versions are resolved by the `claims_final` building block (`queries/claims_final.sql`).

pub mod contract;
pub mod csv;
mod open;
pub mod risk;

pub use open::{
    OpenedExtract, check_file, check_rows, check_schema, locate, open_all, open_extract,
    register_empty,
};
