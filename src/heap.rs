//! The process's allocator: the C library's `malloc` with a small cache of freed blocks of
//! 8–256 KiB in front of it, so that an update's large buffers (TLS records, the decoded
//! file, a growing line) are the last update's, already mapped, instead of fresh pages.
//!
//! musl's allocator (the static binary's) maps a block of this size on its own and unmaps it
//! when it is freed, so a 100 KiB update cost four `mmap`s, four `munmap`s (each a TLB
//! shootdown across the process's threads) and about 40 page faults; glibc keeps such
//! blocks in its heap. The cache holds at most [`SLOTS`] blocks of each power of two from
//! 8 KiB to 256 KiB (about 1 MiB in all), each a lock-free slot taken by a swap, so there is
//! no lock to hold and nothing to allocate in here. A request in that range is rounded up to
//! its power of two; everything else goes straight to `malloc`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The smallest cached block, 8 KiB; requests over half of it (4 KiB) are cached.
const MIN_SHIFT: u32 = 13;
/// The largest cached block, 256 KiB.
const MAX_SHIFT: u32 = 18;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Freed blocks kept per size.
pub const SLOTS: usize = 2;
/// The alignment `malloc` gives; a request for more is not cached.
const ALIGN: usize = 16;

/// The allocator; `main.rs` makes it the global one.
pub struct Heap {
    slots: [[AtomicPtr<u8>; SLOTS]; CLASSES],
}

impl Heap {
    pub const fn new() -> Heap {
        Heap {
            slots: [const { [const { AtomicPtr::new(null_mut()) }; SLOTS] }; CLASSES],
        }
    }

    /// A cached block of class `c`, if there is one: the slot is emptied by the swap that
    /// takes it, so no two threads can take the same block.
    fn take(&self, c: usize) -> *mut u8 {
        for slot in self.slots.get(c).into_iter().flatten() {
            if !slot.load(Ordering::Relaxed).is_null() {
                let p = slot.swap(null_mut(), Ordering::Acquire);
                if !p.is_null() {
                    return p;
                }
            }
        }
        null_mut()
    }

    /// Keeps a freed block of class `c` in an empty slot; `false` when every slot is full.
    fn put(&self, c: usize, p: *mut u8) -> bool {
        self.slots.get(c).into_iter().flatten().any(|slot| {
            slot.compare_exchange(null_mut(), p, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// How many blocks the cache holds now (for the tests).
    pub fn cached(&self) -> usize {
        let full = |s: &AtomicPtr<u8>| !s.load(Ordering::Relaxed).is_null();
        self.slots.iter().flatten().filter(|s| full(s)).count()
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        for (c, slots) in self.slots.iter().enumerate() {
            for slot in slots {
                let p = slot.swap(null_mut(), Ordering::Acquire);
                if !p.is_null() {
                    // SAFETY: a cached block is owned by the cache, from `malloc` with `block(c)`.
                    unsafe { System.dealloc(p, block(c)) };
                }
            }
        }
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

/// The cache class of a request: its power of two, counted from 8 KiB; `None` outside the
/// cached sizes or for an alignment over `malloc`'s.
pub fn class(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if layout.align() > ALIGN || size <= 1 << (MIN_SHIFT - 1) || size > 1 << MAX_SHIFT {
        return None;
    }
    let shift = size.next_power_of_two().trailing_zeros().max(MIN_SHIFT);
    Some((shift - MIN_SHIFT) as usize)
}

/// The layout of a block of class `c`, as `malloc` is asked for it.
fn block(c: usize) -> Layout {
    // A power of two with malloc's alignment: always a valid layout.
    Layout::from_size_align(1 << (c as u32 + MIN_SHIFT), ALIGN).unwrap_or(Layout::new::<u8>())
}

// SAFETY: every block handed out is either `malloc`'s own answer to the request, or a block
// of at least the request's size and alignment that `malloc` gave for its class and that was
// freed, and is owned by exactly one caller (see `take`); blocks go back to `free` with the
// layout they were allocated with.
unsafe impl GlobalAlloc for Heap {
    // One copy of each, not one inlined into every allocation of the program (8 KB).
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(c) => match self.take(c) {
                p if p.is_null() => unsafe { System.alloc(block(c)) },
                p => p,
            },
            None => unsafe { System.alloc(layout) },
        }
    }

    // One copy of each, not one inlined into every allocation of the program (8 KB).
    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(c) => match self.take(c) {
                p if p.is_null() => unsafe { System.alloc_zeroed(block(c)) },
                p => {
                    unsafe { ptr::write_bytes(p, 0, layout.size()) };
                    p
                }
            },
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    // One copy of each, not one inlined into every allocation of the program (8 KB).
    #[inline(never)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match class(layout) {
            Some(c) if self.put(c, p) => {}
            Some(c) => unsafe { System.dealloc(p, block(c)) },
            None => unsafe { System.dealloc(p, layout) },
        }
    }

    // One copy of each, not one inlined into every allocation of the program (8 KB).
    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded to `layout.align()`, does not
        // overflow, which is what makes this layout valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            (None, None) => unsafe { System.realloc(p, layout, new_size) },
            // The block is already its class's size.
            (Some(old), Some(new)) if old == new => p,
            _ => {
                let q = unsafe { self.alloc(new_layout) };
                if !q.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn classes_are_the_powers_of_two_from_8_to_256_kib() {
        assert_eq!(class(layout(4096)), None);
        assert_eq!(class(layout(4097)), Some(0));
        assert_eq!(class(layout(8192)), Some(0));
        assert_eq!(class(layout(8193)), Some(1));
        assert_eq!(class(layout(110_592)), Some(4));
        assert_eq!(class(layout(256 << 10)), Some(5));
        assert_eq!(class(layout((256 << 10) + 1)), None);
        assert_eq!(class(Layout::from_size_align(20_000, 64).unwrap()), None);
        assert_eq!(block(4).size(), 128 << 10);
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let heap = Heap::new();
        unsafe {
            let a = heap.alloc(layout(100_000));
            assert!(!a.is_null());
            ptr::write_bytes(a, 7, 100_000);
            heap.dealloc(a, layout(100_000));
            assert_eq!(heap.cached(), 1);
            // Another size of the same class (128 KiB) gets the same block, zeroed if asked.
            let b = heap.alloc_zeroed(layout(70_000));
            assert_eq!(b, a);
            assert!(std::slice::from_raw_parts(b, 70_000)
                .iter()
                .all(|&x| x == 0));
            assert_eq!(heap.cached(), 0);
            heap.dealloc(b, layout(70_000));
        }
    }

    #[test]
    fn at_most_slots_blocks_of_a_class_are_kept() {
        let heap = Heap::new();
        unsafe {
            let blocks: Vec<_> = (0..SLOTS + 2).map(|_| heap.alloc(layout(20_000))).collect();
            for &p in &blocks {
                heap.dealloc(p, layout(20_000));
            }
            assert_eq!(heap.cached(), SLOTS);
            let again: Vec<_> = (0..SLOTS).map(|_| heap.alloc(layout(30_000))).collect();
            assert!(again.iter().all(|p| blocks.contains(p)));
            assert_eq!(heap.cached(), 0);
            for &p in &again {
                heap.dealloc(p, layout(30_000));
            }
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_in_place_within_one() {
        let heap = Heap::new();
        unsafe {
            let p = heap.alloc(layout(3000));
            for i in 0..3000 {
                *p.add(i) = (i % 251) as u8;
            }
            // 3000 → 5000 bytes: from malloc into the 8 KiB class.
            let q = heap.realloc(p, layout(3000), 5000);
            // 5000 → 8000 bytes: the same block.
            let r = heap.realloc(q, layout(5000), 8000);
            assert_eq!(r, q);
            // 8000 → 300,000 bytes: out of the cache, to malloc; the 8 KiB block is kept.
            let s = heap.realloc(r, layout(8000), 300_000);
            assert_eq!(heap.cached(), 1);
            let kept = std::slice::from_raw_parts(s, 3000);
            assert!(kept.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
            heap.dealloc(s, layout(300_000));
            let t = heap.alloc(layout(6000));
            assert_eq!(t, r);
            heap.dealloc(t, layout(6000));
        }
    }

    #[test]
    fn threads_never_share_a_block() {
        use std::sync::Arc;
        let heap = Arc::new(Heap::new());
        let threads: Vec<_> = (0..4u8)
            .map(|n| {
                let heap = heap.clone();
                std::thread::spawn(move || unsafe {
                    for _ in 0..2000 {
                        let p = heap.alloc(layout(50_000));
                        ptr::write_bytes(p, n, 50_000);
                        std::thread::yield_now();
                        let v = std::slice::from_raw_parts(p, 50_000);
                        assert!(v.iter().all(|&x| x == n), "a block handed out twice");
                        heap.dealloc(p, layout(50_000));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
