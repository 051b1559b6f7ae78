//! The allocator of trainstore's programs (the `trainstore` command and the Python module):
//! mimalloc, with fresh memory committed as it is touched.
//!
//! Arrow decoding allocates and frees large buffers batch after batch; mimalloc keeps freed
//! memory for reuse where the system allocator hands it back to the kernel and faults it in
//! again, zeroed. By default, though, mimalloc commits each 1 GiB arena whole, so the kernel
//! backs it with 2 MiB transparent huge pages, zeroing 2 MiB at each first touch: a process's
//! first parse of 200,000 snapshots (0.2 s of work) spent 0.9 s in the kernel. Committed as
//! touched, it spends 0.1 s there.
//!
//! Freed memory goes back to the kernel after 100 ms instead of mimalloc's 1 s: a create
//! streaming a historical answer into a set frees a row group's worth of buffers several
//! times a second, and a second's worth of them held on added about 700 MB to its peak.

/// The global allocator to declare with `#[global_allocator]`; call [`configure`] first thing
/// in `main` (or the module's init).
pub type Allocator = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc 3's option enum (`mimalloc.h`); the enum is not
/// exported by `libmimalloc-sys`, and Cargo.lock pins the version it is read from.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// `mi_option_purge_delay`, milliseconds before freed memory is returned (same enum).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// What [`configure`] sets [`PURGE_DELAY`] to.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Commits arena memory as it is touched and returns freed memory after 100 ms, unless
/// `MIMALLOC_ARENA_EAGER_COMMIT` or `MIMALLOC_PURGE_DELAY` say otherwise (mimalloc's own
/// variables keep the last word).
pub fn configure() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets one integer option; mimalloc reads it when it next reserves an arena.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads it at each purge.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_turns_off_the_option_that_defaults_to_eager_on_linux() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some()
            || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
        {
            return; // the variables keep the last word, as `configure` documents
        }
        // SAFETY: reads integer options.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        // 2 ("eager where the OS overcommits") and 1000 are these options' defaults; their
        // neighbours in the enum default to other values, so a shifted index shows here.
        assert_eq!((get(ARENA_EAGER_COMMIT), get(PURGE_DELAY)), (2, 1000));
        configure();
        assert_eq!(
            (get(ARENA_EAGER_COMMIT), get(PURGE_DELAY)),
            (0, PURGE_DELAY_MS)
        );
    }
}
