//! Extracts: the data contract ([`contract`]) and opening a data directory against it. Every file
//! is held to the contract when it is opened: a missing column or a wrong type is an error naming
//! the file, the column, and the expected and found types. Rows that break a row rule ([`rules`]:
//! a required value null, a coded value not allowed, columns that contradict each other) are set
//! aside — the extract's view holds only usable rows — and counted; `crate::quality` decides
//! whether a run may go on.
//! Claim versions are resolved by the `claims_final` building block (`queries/claims_final.sql`).

mod chunks;
pub mod contract;
pub mod csv;
mod open;
pub mod risk;
pub mod rules;

pub use open::{
    FileFinding, OpenedExtract, all_rows, check_file, check_rows, check_schema, locate, open_all,
    open_all_as, open_all_checked, open_extract, register_empty,
};
