//! The binary's global allocator: the system allocator (musl's, in the static binary) plus
//! a small cache of freed blocks from 16 KiB to 2 MiB.
//!
//! Why: musl gives blocks of these sizes back to the kernel as soon as they are free, so
//! every watch event mapped fresh memory for the TLS records, the HTTP chunks and the
//! ConfigMap's content, faulted in every page of it (25 faults per 100 KiB) and unmapped
//! the previous event's: a third of the loader's CPU time per 100 KiB update. An update
//! frees about what the next one allocates, so keeping those blocks for the next event
//! removes the faults and the map/unmap calls (scripts/bench.sh shows the effect).
//!
//! Rules, all in [`class`] and the cache's `keep`:
//! - Blocks of [`MIN`] to [`MAX`] bytes are allocated at their class (the next power of
//!   two), so a freed block serves every later request of its class. Pages of a block that
//!   are never written cost no memory.
//! - At most [`SLOTS`] blocks and [`KEEP_BYTES`] bytes are kept; a block freed into a full
//!   cache displaces smaller kept ones, or goes back to the system, as does a block that a
//!   `realloc` outgrew. [`trim`] hands every
//!   kept block back; the writer calls it after a quiet spell, so an idle loader holds none.
//! - Smaller and larger blocks, and over-aligned layouts, go to the system untouched.
//!
//! Registered with `#[global_allocator]` in `main.rs` only: tests and benchmarks built on
//! the library keep their own allocator, where [`trim`] finds an empty cache.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The smallest block size that is rounded to a class and cached: what rustls, the HTTP
/// reader and the JSON strings allocate per event, from a TLS record's payload up.
/// (Smaller classes would round the many small long-lived blocks up: +100 KiB idle.)
pub const MIN: usize = 16 * 1024;
/// The largest class: bigger blocks go to the system, which grows them without a copy.
pub const MAX: usize = 2 << 20;
/// How many freed blocks are kept, and at most how many bytes (of their classes): enough
/// for one 1 MiB ConfigMap's content, which keeps the peak memory of such updates within
/// its budget (scripts/bench.sh).
pub const SLOTS: usize = 8;
pub const KEEP_BYTES: usize = 2 << 20;
/// The largest alignment a cached block may need (what malloc gives).
const ALIGN: usize = 16;

/// The allocator handle for `#[global_allocator]`; its state is the module's cache.
pub struct Reuse;

/// The size a cached request is allocated at: the next power of two, so that a block
/// serves every request of its class, and a `Vec` that doubles moves once per class. The
/// pages of a block that are never written cost no memory.
pub fn class(size: usize) -> usize {
    if (MIN..=MAX).contains(&size) {
        size.next_power_of_two()
    } else {
        size
    }
}

/// Kept blocks: `(address, class)`, address 0 for an empty slot.
struct Cache {
    busy: AtomicBool,
    slots: UnsafeCell<[(usize, usize); SLOTS]>,
}

// SAFETY: `slots` is only touched while `busy` is held (see `Cache::with`).
unsafe impl Sync for Cache {}

static CACHE: Cache = Cache {
    busy: AtomicBool::new(false),
    slots: UnsafeCell::new([(0, 0); SLOTS]),
};

impl Cache {
    /// Runs `f` on the slots under a spin lock: the critical sections are a few compares
    /// and never allocate or call out. A holder that lost its core is waited for by
    /// yielding, not by spinning through the waiter's whole time slice.
    fn with<R>(&self, f: impl FnOnce(&mut [(usize, usize); SLOTS]) -> R) -> R {
        let mut spins = 0u32;
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the lock is held, so this is the only reference to the slots.
        let r = f(unsafe { &mut *self.slots.get() });
        self.busy.store(false, Ordering::Release);
        r
    }

    /// A kept block of exactly this class, taken out of the cache.
    fn take(&self, class: usize) -> Option<*mut u8> {
        self.with(|slots| {
            let slot = slots.iter_mut().find(|s| s.0 != 0 && s.1 == class)?;
            let ptr = slot.0 as *mut u8;
            *slot = (0, 0);
            Some(ptr)
        })
    }

    /// Keeps a freed block, displacing smaller kept ones when the slots or the byte budget
    /// are full. Returns the blocks to hand back to the system (address 0: none), to be
    /// freed after the lock is let go.
    fn keep(&self, ptr: *mut u8, class: usize) -> [(usize, usize); SLOTS + 1] {
        let mut out = [(0, 0); SLOTS + 1];
        self.with(|slots| {
            let mut n = 0;
            let mut release = |block: (usize, usize)| {
                if let Some(o) = out.get_mut(n) {
                    *o = block;
                    n += 1;
                }
            };
            if class > KEEP_BYTES {
                return release((ptr as usize, class));
            }
            loop {
                let kept: usize = slots.iter().filter(|s| s.0 != 0).map(|s| s.1).sum();
                let free = slots.iter().position(|s| s.0 == 0);
                if let (Some(i), true) = (free, kept + class <= KEEP_BYTES) {
                    slots[i] = (ptr as usize, class);
                    return;
                }
                // Displace the smallest kept block if it is smaller than this one.
                let smallest = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.0 != 0)
                    .min_by_key(|(_, s)| s.1)
                    .map(|(i, s)| (i, *s));
                match smallest {
                    Some((i, block)) if block.1 < class => {
                        slots[i] = (0, 0);
                        release(block);
                    }
                    _ => return release((ptr as usize, class)),
                }
            }
        });
        out
    }

    /// Empties the cache; the blocks to hand back.
    fn drain(&self) -> [(usize, usize); SLOTS] {
        self.with(|slots| std::mem::replace(slots, [(0, 0); SLOTS]))
    }
}

/// Whether a layout is cached: large, and aligned no more than malloc aligns.
fn cached(layout: &Layout) -> bool {
    (MIN..=MAX).contains(&layout.size()) && layout.align() <= ALIGN
}

/// The layout a cached block of `class` bytes has at the system allocator.
fn system_layout(class: usize) -> Layout {
    // A class is a power of two of at most `MAX`: a valid size at alignment 16.
    Layout::from_size_align(class, ALIGN).unwrap_or(Layout::new::<u8>())
}

/// Hands every kept block back to the system allocator. Cheap when the cache is empty.
pub fn trim() {
    for (ptr, class) in CACHE.drain() {
        if ptr != 0 {
            // SAFETY: kept blocks came from `System.alloc(system_layout(class))`.
            unsafe { System.dealloc(ptr as *mut u8, system_layout(class)) };
        }
    }
}

/// How many blocks the cache keeps now, and their bytes.
pub fn kept() -> (usize, usize) {
    CACHE.with(|slots| {
        slots
            .iter()
            .filter(|s| s.0 != 0)
            .fold((0, 0), |(n, bytes), s| (n + 1, bytes + s.1))
    })
}

// SAFETY: every large block is allocated by `System` at `system_layout(class(size))` and
// freed (or kept, then reused or freed) at that same layout; the class of a layout's size
// is the same at allocation and deallocation, because Rust passes the same layout to both.
unsafe impl GlobalAlloc for Reuse {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !cached(&layout) {
            return unsafe { System.alloc(layout) };
        }
        let class = class(layout.size());
        match CACHE.take(class) {
            Some(ptr) => ptr,
            None => unsafe { System.alloc(system_layout(class)) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !cached(&layout) {
            return unsafe { System.alloc_zeroed(layout) };
        }
        let class = class(layout.size());
        match CACHE.take(class) {
            Some(ptr) => {
                // SAFETY: a kept block holds `class` ≥ `layout.size()` bytes.
                unsafe { ptr.write_bytes(0, layout.size()) };
                ptr
            }
            // Fresh memory from the system is zero already, untouched (calloc knows).
            None => unsafe { System.alloc_zeroed(system_layout(class)) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !cached(&layout) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        for (ptr, class) in CACHE.keep(ptr, class(layout.size())) {
            if ptr != 0 {
                // SAFETY: cached-size blocks come from `System.alloc(system_layout(class))`.
                unsafe { System.dealloc(ptr as *mut u8, system_layout(class)) };
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = Layout::from_size_align(new_size, layout.align());
        let Ok(grown) = grown else {
            return std::ptr::null_mut();
        };
        match (cached(&layout), cached(&grown)) {
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // Within one class the block already has the room.
            (true, true) if class(layout.size()) == class(new_size) => ptr,
            _ => {
                let new = unsafe { self.alloc(grown) };
                if !new.is_null() {
                    let n = layout.size().min(new_size);
                    // SAFETY: both blocks hold at least `n` bytes and are distinct.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, n);
                        // An outgrown block goes back to the system, not to the cache: a
                        // growing buffer rarely shrinks again to ask for it (keeping them
                        // took a one-shot run's peak from 3.5 to 5.3 MiB for 1 MiB).
                        if cached(&layout) {
                            System.dealloc(ptr, system_layout(class(layout.size())));
                        } else {
                            System.dealloc(ptr, layout);
                        }
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_within_the_cached_range() {
        assert_eq!(class(100), 100);
        assert_eq!(class(MIN - 1), MIN - 1);
        assert_eq!(class(MIN), MIN);
        assert_eq!(class(MIN + 1), 2 * MIN);
        assert_eq!(class(100 * 1024), 128 * 1024);
        assert_eq!(class(MAX), MAX);
        assert_eq!(class(MAX + 1), MAX + 1);
        for size in (MIN..MAX).step_by(40_093) {
            let c = class(size);
            assert!(
                c >= size && c < 2 * size && c.is_power_of_two(),
                "{size} → {c}"
            );
        }
    }

    /// The cache's whole life, on the real allocator: reuse of a class, growth across
    /// classes, the slot and byte limits, and trim. One test, because the cache is a
    /// process-wide static (and the only user of it in the test binary).
    #[test]
    fn freed_blocks_are_reused_then_trimmed() {
        let a = Reuse;
        let lay = |size: usize| Layout::from_size_align(size, 8).unwrap();
        unsafe {
            trim();
            let p = a.alloc(lay(100 * 1024));
            p.write_bytes(7, 100 * 1024);
            a.dealloc(p, lay(100 * 1024));
            assert_eq!(kept(), (1, 128 * 1024));
            let q = a.alloc(lay(110 * 1024));
            assert_eq!(q, p, "a freed block serves its class");
            assert_eq!(kept(), (0, 0));
            // Growing within the class stays in place; out of it, the bytes move.
            let q = a.realloc(q, lay(110 * 1024), 128 * 1024);
            assert_eq!(q, p);
            let r = a.realloc(q, lay(128 * 1024), 300 * 1024);
            assert_ne!(r, p);
            assert_eq!(*r.add(100 * 1024 - 1), 7, "contents survive a move");
            assert_eq!(kept(), (0, 0), "the outgrown block went back to the system");
            let p = a.alloc(lay(100 * 1024));
            a.dealloc(p, lay(100 * 1024));
            assert_eq!(kept(), (1, 128 * 1024));
            // Small blocks pass by the cache; zeroed ones are zero even when reused.
            let s = a.alloc(lay(MIN - 1));
            a.dealloc(s, lay(MIN - 1));
            assert_eq!(kept().0, 1);
            let z = a.alloc_zeroed(lay(128 * 1024));
            assert_eq!(z, p);
            assert!(std::slice::from_raw_parts(z, 128 * 1024)
                .iter()
                .all(|&b| b == 0));
            a.dealloc(z, lay(128 * 1024));
            // The byte limit: a block past it goes back; one that fits displaces smaller.
            let huge = a.alloc(lay(KEEP_BYTES + 1));
            a.dealloc(huge, lay(KEEP_BYTES + 1));
            assert_eq!(kept(), (1, 128 * 1024));
            a.dealloc(r, lay(300 * 1024));
            assert_eq!(kept(), (2, 128 * 1024 + 512 * 1024));
            let full = a.alloc(lay(KEEP_BYTES));
            a.dealloc(full, lay(KEEP_BYTES));
            assert_eq!(
                kept(),
                (1, KEEP_BYTES),
                "the largest stays, the smaller went"
            );
            let small = a.alloc(lay(MIN));
            a.dealloc(small, lay(MIN));
            assert_eq!(
                kept(),
                (1, KEEP_BYTES),
                "no room and nothing smaller to displace"
            );
            trim();
            assert_eq!(kept(), (0, 0));
            // The slot limit.
            let blocks: Vec<*mut u8> = (0..SLOTS + 2).map(|_| a.alloc(lay(MIN))).collect();
            for &b in &blocks {
                a.dealloc(b, lay(MIN));
            }
            assert_eq!(kept(), (SLOTS, SLOTS * MIN));
            trim();
            assert_eq!(kept(), (0, 0));
        }
    }
}
