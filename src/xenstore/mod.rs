//! Xenstore client (work in progress).
