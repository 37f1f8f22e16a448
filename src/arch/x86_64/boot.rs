//! Pulls boot/entry.S (ELF notes, `_start`, hypercall page, boot stack)
//! into the crate. The linker script's `ENTRY(_start)` makes the linker
//! fetch this object from the xenpv rlib into every application image.

core::arch::global_asm!(include_str!("../../../boot/entry.S"), options(att_syntax));
