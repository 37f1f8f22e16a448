//! Interdomain event ping-pong, second side: binds to the port ev_ping
//! published in xenstore and answers each event. See pingpong/common.rs.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "pingpong/common.rs"]
mod common;

xenpv::main!(main);

fn main() -> Result<(), common::Error> {
    common::pong("ev_pong")
}
