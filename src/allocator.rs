//! The memory allocator of every program built from this crate: jemalloc,
//! with its background thread, which hands memory that has been free for a
//! few seconds back to the system.
//!
//! With glibc's `malloc` an instance that had served a thousand clients that
//! never read stayed at the size it reached while they were connected: the
//! per-connection buffers, freed when the connections ended, sat in the
//! worker threads' arenas between longer-lived allocations, and glibc only
//! gives back the free end of an arena. jemalloc returns free pages wherever
//! they are, on a clock (`dirty_decay_ms`, 10 s by default), from a thread
//! of its own, so an idle instance shrinks without waiting for the next
//! allocation. Operators can tune it through `_RJEM_MALLOC_CONF` (for example
//! `_RJEM_MALLOC_CONF=dirty_decay_ms:5000`). SQLite, built into the binary, keeps
//! the system's `malloc`.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
