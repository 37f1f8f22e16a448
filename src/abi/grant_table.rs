//! Grant table ABI (public/grant_table.h). Filled in by the grant-table work.
