//! What std would give the `no_std` component: a heap, the canonical ABI's allocator, and an end
//! for panics.

use alloc::alloc::{GlobalAlloc, Layout, handle_alloc_error};
use core::arch::wasm32::unreachable;
use core::ffi::c_void;

unsafe extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

/// wasi-libc's `malloc`, as std uses it on WASI. It starts in the free part of the initial
/// memory (`__heap_base` to `__heap_end`); an allocator that begins by growing the memory, as the
/// `dlmalloc` crate does, costs every fresh instance a page and 9 µs in the step benchmark.
struct LibcHeap;

/// The alignment std relies on `malloc` giving on wasm32 (wasi-libc's gives 16); larger ones go
/// to `aligned_alloc`.
const MALLOC_ALIGN: usize = 8;

// SAFETY: wasi-libc's allocator returns blocks aligned to `MALLOC_ALIGN`, or to the alignment
// `aligned_alloc` is given, and null when out of memory.
unsafe impl GlobalAlloc for LibcHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain calls into the C allocator; `layout.align()` is a power of two.
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                malloc(layout.size()).cast()
            } else {
                aligned_alloc(layout.align(), layout.size()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: `ptr` came from `malloc`, so C's `realloc` may move it.
            return unsafe { realloc(ptr.cast(), new_size).cast() };
        }
        // C's `realloc` does not keep a larger alignment: move the block by hand.
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout, and
        // `ptr` holds `layout.size()` bytes.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static HEAP: LibcHeap = LibcHeap;

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
