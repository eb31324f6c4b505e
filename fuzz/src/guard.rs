//! The allocation guard and scratch folder every fuzz target (and the regression test,
//! tests/tests/fuzz_regressions.rs, which includes this file) runs under.
//!
//! The guard enforces issue #20's rule "no allocation larger than the input": while a target
//! parses, a single allocation above [`ALLOWED_FACTOR`] times the input plus [`ALLOWED_SLACK`]
//! aborts the process, so libFuzzer saves the input as a crash. The factor covers the largest
//! legitimate expansion, dequantising GGUF data (a 1.56-bit type grows about 20x into f32);
//! the slack covers fixed-size buffers (readers, zstd windows, hash tables' first growth).
//! A header that claims a billion rows and gets them allocated is caught at the claim, not
//! when the machine runs out of memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// How many bytes of allocation one byte of input may justify.
pub const ALLOWED_FACTOR: usize = 32;
/// Fixed allowance on top, for buffers whose size doesn't depend on the input.
pub const ALLOWED_SLACK: usize = 4 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// What is being parsed, named in the abort message (the replay test sets it per file).
static LABEL: Mutex<&'static str> = Mutex::new("");

/// Names the input parsed next, for the abort message.
pub fn set_label(label: &'static str) {
    if let Ok(mut slot) = LABEL.lock() {
        *slot = label;
    }
}

/// [`System`] with a per-allocation size limit; the including crate installs it with
/// `#[global_allocator]`.
pub struct GuardedAlloc;

fn check(size: usize) {
    let limit = LIMIT.load(Ordering::Relaxed);
    if size > limit {
        // No formatting machinery here: it could allocate inside the allocator.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = size;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut err = std::io::stderr();
        let _ = err.write_all(b"quarry-fuzz: one allocation of ");
        let _ = err.write_all(&digits[at..]);
        let _ = err.write_all(b" bytes is larger than the input justifies");
        if let Ok(label) = LABEL.try_lock() {
            let _ = err.write_all(b": ");
            let _ = err.write_all(label.as_bytes());
        }
        let _ = err.write_all(b"\n");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the guard only looks at sizes.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Runs `parse` with the allocation limit that `input_len` bytes of input allow.
pub fn guarded<T>(input_len: usize, parse: impl FnOnce() -> T) -> T {
    LIMIT.store(
        input_len
            .saturating_mul(ALLOWED_FACTOR)
            .saturating_add(ALLOWED_SLACK),
        Ordering::Relaxed,
    );
    let out = parse();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    out
}

/// Writes `data` to `name` in this process' scratch folder (in /dev/shm where there is one:
/// the readers under test take paths) and returns the path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("quarry-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}
