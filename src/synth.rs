//! Synthetic extracts (being written).
