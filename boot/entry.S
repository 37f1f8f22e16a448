/* boot/entry.S: the entry point of a xenpv image and the Xen ELF notes.
 *
 * Implements the PV boot ABI of Xen's public/elfnote.h and
 * public/xen.h ("Start-of-day memory layout"): Xen jumps to the ENTRY
 * note's address in 64-bit mode, ring 3, events masked, with %rsi
 * pointing at start_info inside the initial mapping.
 *
 * Included into the xenpv crate by src/arch/x86_64/boot.rs
 * (global_asm!, AT&T syntax).
 */

.set XEN_ELFNOTE_ENTRY,          1
.set XEN_ELFNOTE_HYPERCALL_PAGE, 2
.set XEN_ELFNOTE_VIRT_BASE,      3
.set XEN_ELFNOTE_PADDR_OFFSET,   4
.set XEN_ELFNOTE_XEN_VERSION,    5
.set XEN_ELFNOTE_GUEST_OS,       6
.set XEN_ELFNOTE_GUEST_VERSION,  7
.set XEN_ELFNOTE_LOADER,         8

.set BOOT_STACK_SIZE, 65536

/* One note: namesz, descsz, type, "Xen\0", desc, each padded to 4 bytes. */
.macro xen_note type, desc:vararg
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f
    .long 4f - 3f
    .long \type
1:  .asciz "Xen"
2:  .balign 4
3:  \desc
4:  .balign 4
    .popsection
.endm

xen_note XEN_ELFNOTE_GUEST_OS,      .asciz "xenpv"
xen_note XEN_ELFNOTE_GUEST_VERSION, .asciz "0.1"
xen_note XEN_ELFNOTE_XEN_VERSION,   .asciz "xen-3.0"
xen_note XEN_ELFNOTE_LOADER,        .asciz "generic"
/* pfn N <-> VIRT_BASE + N pages; ELF p_paddr == p_vaddr, so the physical
 * offset equals the virtual base (virt_offset = VIRT_BASE - PADDR_OFFSET = 0). */
xen_note XEN_ELFNOTE_VIRT_BASE,     .quad 0xFFFFFFFF80000000
xen_note XEN_ELFNOTE_PADDR_OFFSET,  .quad 0xFFFFFFFF80000000
xen_note XEN_ELFNOTE_ENTRY,         .quad _start
xen_note XEN_ELFNOTE_HYPERCALL_PAGE, .quad xenpv_hypercall_page

    .pushsection .text.xenpv.entry, "ax", @progbits
    .globl _start
_start:
    cld
    lea xenpv_boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi              /* start_info (virtual address) */
    call xenpv_rust_start       /* never returns */
    ud2
    .popsection

/* Xen fills this page with one 32-byte stub per hypercall. Until then it
 * holds `int3`, so a call before Xen has written it traps loudly. */
    .pushsection .text.xenpv.hypercall_page, "ax", @progbits
    .balign 4096
    .globl xenpv_hypercall_page
xenpv_hypercall_page:
    .fill 4096, 1, 0xcc
    .popsection

    .pushsection .bss.xenpv.boot_stack, "aw", @nobits
    .balign 4096
xenpv_boot_stack:
    .skip BOOT_STACK_SIZE
xenpv_boot_stack_top:
    .popsection
