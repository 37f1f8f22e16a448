//! Xenstore wire ABI (public/io/xs_wire.h). Filled in by the xenstore work.
