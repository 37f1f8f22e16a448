//! The smallest xenpv application: print a line and power off.
#![no_std]
#![no_main]

xenpv::main!(main);

fn main() {
    xenpv::println!("Hello from xenpv!");
}
