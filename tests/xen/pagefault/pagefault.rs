//! Reads an unmapped address on purpose: the page fault must be reported
//! with the faulting address and registers, then the domain crashes.
#![no_std]
#![no_main]

xenpv::main!(main);

fn main() {
    xenpv::println!("about to read unmapped address 0xdead0000");
    let p = core::hint::black_box(0xdead_0000usize) as *const u64;
    // SAFETY: none: this read is meant to fault; the runtime reports it.
    let v = unsafe { p.read_volatile() };
    xenpv::println!("unreachable: read {v}");
}
