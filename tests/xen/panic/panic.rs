//! Panics on purpose: the message and location must reach the console
//! and the domain must shut down with reason `crash`.
#![no_std]
#![no_main]

xenpv::main!(main);

fn main() {
    xenpv::println!("about to panic");
    let v: [u32; 3] = [1, 2, 3];
    let i = core::hint::black_box(7);
    panic!("deliberate panic: index {i} of {}", v.len());
}
