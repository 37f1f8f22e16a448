//! Console output: the PV console ring for a domU, `console_io` for dom0
//! and for anything printed before the ring is set up.

pub mod ring;

#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
pub use guest::*;

/// Prints to the console (no newline).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints to the console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Host builds have no Xen console: tests print to stdout, tools drop it.
#[cfg(not(target_os = "none"))]
#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments<'_>) {
    #[cfg(test)]
    std::print!("{args}");
    let _ = args;
}
