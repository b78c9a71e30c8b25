//! What std would give the `no_std` component: a heap, the canonical ABI's allocator, and an end
//! for panics.

use alloc::alloc::{GlobalAlloc, Layout, handle_alloc_error};
use core::arch::wasm32::{memory_grow, memory_size, unreachable};
use core::cell::Cell;

unsafe extern "C" {
    /// Where the linker put the end of the stack and static data: the heap starts here.
    static __heap_base: u8;
}

const PAGE: usize = 65536;

/// A bump allocator, reset whenever nothing is allocated. The host runs each call in a fresh
/// instance, and every export frees what it returned before the next call (post-return), so
/// the heap empties between calls and a call's garbage is gone with it. Within a call, a block
/// freed last (a temporary string, a grown vector) is taken back at once. It starts in the free
/// part of the initial memory, as wasi-libc's `malloc` does (an allocator that begins by growing
/// the memory costs every fresh instance a page and 9 µs in the step benchmark), and it is a
/// few hundred bytes where `malloc` was 12 KB of the component.
struct BumpHeap {
    /// The first free byte; 0 until first use.
    next: Cell<usize>,
    /// Blocks handed out and not yet freed.
    live: Cell<usize>,
}

// SAFETY: a component instance runs on one thread.
unsafe impl Sync for BumpHeap {}

impl BumpHeap {
    fn base() -> usize {
        // Only the symbol's address is taken; the linker defines it.
        core::ptr::addr_of!(__heap_base) as usize
    }

    /// `size` bytes at `align`, growing the memory as needed; null when it cannot grow. Out of
    /// line, as are the other entry points: inlined into every allocation site they would cost
    /// the component more than `malloc` did.
    #[inline(never)]
    fn take(&self, size: usize, align: usize) -> *mut u8 {
        let next = match self.next.get() {
            0 => Self::base(),
            next => next,
        };
        let Some(start) = next.checked_next_multiple_of(align) else {
            return core::ptr::null_mut();
        };
        let Some(end) = start.checked_add(size) else {
            return core::ptr::null_mut();
        };
        if !Self::reserve(end) {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        self.live.set(self.live.get() + 1);
        start as *mut u8
    }

    /// Whether the memory reaches `end`, growing it if it did not.
    fn reserve(end: usize) -> bool {
        let have = memory_size::<0>() * PAGE;
        if end <= have {
            return true;
        }
        let pages = (end - have).div_ceil(PAGE);
        memory_grow::<0>(pages) != usize::MAX
    }
}

#[global_allocator]
static HEAP: BumpHeap = BumpHeap {
    next: Cell::new(0),
    live: Cell::new(0),
};

// SAFETY: blocks are aligned as asked, never overlap (the pointer only moves past a live block,
// or back over the last one when it is freed), and null means out of memory.
unsafe impl GlobalAlloc for BumpHeap {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.take(layout.size(), layout.align())
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(Self::base());
        } else if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        // The last block grows or shrinks in place: a vector being filled moves no bytes.
        if start + layout.size() == self.next.get() {
            let Some(end) = start.checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !Self::reserve(end) {
                return core::ptr::null_mut();
            }
            self.next.set(end);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let new = self.take(new_size, layout.align());
        if !new.is_null() {
            // SAFETY: the old block holds `layout.size()` bytes and the new one more; they do
            // not overlap, the new one lying past every live block.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// The canonical ABI's allocator, through which the host passes strings and lists in. On wasip2
/// wit-bindgen leaves it to wasi-libc, whose version nothing links in without std.
///
/// # Safety
///
/// The host calls it as the canonical ABI defines: a non-zero `old_len` and `old_ptr` describe
/// a block this function returned with the same `align`.
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        unreachable()
    };
    // SAFETY: `layout` has a non-zero size; a non-zero `old_len` describes a live block
    // allocated with `align`, and `new_len` rounded up to `align` fits (`layout` exists).
    let block = unsafe {
        if old_len == 0 {
            HEAP.alloc(layout)
        } else {
            let old = Layout::from_size_align_unchecked(old_len, align);
            HEAP.realloc(old_ptr, old, new_len)
        }
    };
    if block.is_null() {
        handle_alloc_error(layout);
    }
    block
}

/// A panic is a bug the tests exist to prevent: it ends the call with a trap, which the host
/// reports as the component's failure. Its message would need stderr, which the component does
/// not import; the same code runs natively in the tests, where the message is printed.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unreachable()
}
