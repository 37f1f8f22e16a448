//! Interdomain event ping-pong, first side: `cargo xtask run ev_ping ev_pong`.
//! Offers an unbound port to its peer through xenstore and times 1000
//! round trips. See pingpong/common.rs.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "pingpong/common.rs"]
mod common;

xenpv::main!(main);

fn main() -> Result<(), common::Error> {
    common::ping("ev_ping")
}
