//! Architecture-specific code: every `asm!`/`global_asm!` of the crate lives below here.

pub mod x86_64;
