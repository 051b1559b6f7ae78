//! The allocator of trainstore's programs (the `trainstore` command and the Python module):
//! mimalloc, with fresh memory committed as it is touched.
//!
//! Arrow decoding allocates and frees large buffers batch after batch; mimalloc keeps freed
//! memory for reuse where the system allocator hands it back to the kernel and faults it in
//! again, zeroed. By default, though, mimalloc commits each 1 GiB arena whole, so the kernel
//! backs it with 2 MiB transparent huge pages, zeroing 2 MiB at each first touch: a process's
//! first parse of 200,000 snapshots (0.2 s of work) spent 0.9 s in the kernel. Committed as
//! touched, it spends 0.1 s there.

/// The global allocator to declare with `#[global_allocator]`; call [`configure`] first thing
/// in `main` (or the module's init).
pub type Allocator = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc 3's option enum (`mimalloc.h`); the enum is not
/// exported by `libmimalloc-sys`, and Cargo.lock pins the version it is read from.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits arena memory as it is touched, unless `MIMALLOC_ARENA_EAGER_COMMIT` says otherwise
/// (mimalloc's own variable keeps the last word).
pub fn configure() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets one integer option; mimalloc reads it when it next reserves an arena.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_turns_off_the_option_that_defaults_to_eager_on_linux() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
            return; // the variable keeps the last word, as `configure` documents
        }
        // SAFETY: reads one integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) };
        // 2 ("eager where the OS overcommits") is this option's default; its neighbours in
        // the enum default to 1, so a shifted index shows here.
        assert_eq!(get(), 2);
        configure();
        assert_eq!(get(), 0);
    }
}
