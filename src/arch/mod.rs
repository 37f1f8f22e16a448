//! Architecture-specific code: every `asm!`/`global_asm!` of the crate lives below here.

// Architecture code: asm, page tables, trap entry.
#![allow(unsafe_code)]

pub mod x86_64;
