//! Work shared between the calling thread and whichever of the pool's threads join it, phase
//! after phase, without a parallel dispatch per phase: a decoding step is ~150 small products
//! one after the other, and each of rayon's `par_iter`s there cost a wake-up and a wait that
//! the step's few milliseconds could not hide (docs/benchmarks.md, issue 27).
//!
//! [`with_team`] spawns a helper job for each other thread of the pool and runs the caller's
//! closure on the calling thread (the leader); inside it, [`Team::run`] publishes a phase (a
//! closure and a number of items) that the leader and the helpers that have joined claim item
//! by item through one atomic word, and returns when every item has run. Helpers spin between
//! phases and leave when the closure returns. A helper that never starts (its thread busy
//! elsewhere) costs nothing but its share: the leader claims every item left, so the team never
//! waits on a thread that is not there, and nesting inside other parallel work cannot deadlock.
//! Which thread runs an item changes from run to run; what an item computes must not depend on
//! it (every product here computes an output the same way whoever computes it).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Bits of the phase word for the next item and for the number of items.
const ITEM_BITS: u32 = 20;
const ITEM_MASK: u64 = (1 << ITEM_BITS) - 1;

/// The calling thread and the pool's threads that joined it (see the module's docs).
pub(super) struct Team {
    /// `epoch << 40 | items << 20 | next item` of the phase being run.
    phase: AtomicU64,
    /// The phase's closure (type-erased) and the function that calls it.
    data: AtomicPtr<()>,
    call: AtomicPtr<()>,
    /// Items of the phase that have run.
    done: AtomicUsize,
    /// Set when the leader's closure has returned: helpers leave.
    finished: AtomicBool,
    /// The first panic of a phase's item, raised again on the leader.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    helpers: usize,
}

/// Sets [`Team::finished`] when the leader's closure ends, by return or by panic, so that the
/// scope's wait for the helpers ends too.
struct Finish<'a>(&'a AtomicBool);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `f` on the calling thread with a [`Team`] of the current pool's threads.
pub(super) fn with_team<R: Send>(f: impl FnOnce(&Team) -> R + Send) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    let team = Team {
        phase: AtomicU64::new(0),
        data: AtomicPtr::new(std::ptr::null_mut()),
        call: AtomicPtr::new(std::ptr::null_mut()),
        done: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        panic: Mutex::new(None),
        helpers,
    };
    if helpers == 0 {
        return f(&team);
    }
    rayon::scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| team.help());
        }
        let _finish = Finish(&team.finished);
        f(&team)
    })
}

/// Calls the closure behind `data` (an `F`) on item `i`.
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn trampoline<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller's.
    unsafe { (*data.cast::<F>())(i) }
}

impl Team {
    /// The leading thread and its helpers, whether or not they have joined.
    pub(super) fn threads(&self) -> usize {
        self.helpers + 1
    }

    /// Runs `f(i)` for every `i` in `0..items` on the team's threads and returns once all have
    /// run; a panic in any of them is raised here, after the others have finished.
    pub(super) fn run<F: Fn(usize) + Sync>(&self, items: usize, f: &F) {
        if self.helpers == 0 || items <= 1 || items as u64 > ITEM_MASK {
            (0..items).for_each(f);
            return;
        }
        // Every item of the previous phase has run, so no thread reads these until the new
        // phase word below is published (see `claim`).
        self.data.store(std::ptr::from_ref(f).cast::<()>().cast_mut(), Ordering::Relaxed);
        self.call.store(trampoline::<F> as *mut (), Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        // The epoch wraps after 2^24 phases of one team; a word repeats only that far apart.
        let epoch = ((self.phase.load(Ordering::Relaxed) >> (2 * ITEM_BITS)) + 1) & 0xff_ffff;
        self.phase.store(epoch << (2 * ITEM_BITS) | (items as u64) << ITEM_BITS, Ordering::Release);
        while self.claim() {}
        // `f` lives on the caller's stack: no helper may still be running it when this returns.
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < items {
            backoff(&mut spins);
        }
        let panic = self.panic.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }

    /// Claims the current phase's next item and runs it; `false` when none is left.
    fn claim(&self) -> bool {
        let word = self.phase.load(Ordering::Acquire);
        let (items, next) = ((word >> ITEM_BITS) & ITEM_MASK, word & ITEM_MASK);
        if next >= items {
            return false;
        }
        // Read before the claim: while the word still reads `next < items` this phase has
        // not finished, so these are its closure's (the leader writes the next phase's only
        // after every item of this one has run, and the word only grows).
        let data = self.data.load(Ordering::Relaxed);
        let call = self.call.load(Ordering::Relaxed);
        if self.phase.compare_exchange(word, word + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return true; // another thread took it: look again
        }
        // SAFETY: `call` is `trampoline::<F>` for the `F` at `data`, which lives until `run`
        // has seen this item done.
        let call: unsafe fn(*const (), usize) = unsafe { std::mem::transmute(call) };
        // SAFETY: as above.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe { call(data, next as usize) })) {
            let mut slot = self.panic.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert(payload);
        }
        self.done.fetch_add(1, Ordering::Release);
        true
    }

    /// A helper: claims items of every phase until the leader's closure returns.
    fn help(&self) {
        let mut spins = 0u32;
        while !self.finished.load(Ordering::Acquire) {
            if self.claim() {
                spins = 0;
            } else {
                backoff(&mut spins);
            }
        }
    }
}

/// A wait: spinning at first (a phase comes within microseconds), then yielding the core.
fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 1 << 14 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    #[test]
    fn every_item_of_every_phase_runs_once() {
        for threads in [1, 2, 4] {
            pool(threads).install(|| {
                with_team(|team| {
                    for items in [0, 1, 2, 7, 300] {
                        let counts: Vec<AtomicU32> = (0..items).map(|_| AtomicU32::new(0)).collect();
                        team.run(items, &|i| {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "{threads} threads, {items}");
                    }
                });
            });
        }
    }

    #[test]
    fn a_phase_sees_what_the_one_before_wrote() {
        pool(3).install(|| {
            let total = with_team(|team| {
                let cells: Vec<AtomicU32> = (0..64).map(|_| AtomicU32::new(0)).collect();
                for round in 1..=50 {
                    team.run(64, &|i| {
                        // Each item reads its neighbour's value of the round before.
                        let seen = cells[(i + 1) % 64].load(Ordering::Relaxed);
                        assert_eq!(seen, round - 1);
                    });
                    team.run(64, &|i| cells[i].store(round, Ordering::Relaxed));
                }
                cells.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u32>()
            });
            assert_eq!(total, 64 * 50);
        });
    }

    #[test]
    fn teams_nested_in_parallel_work_finish() {
        // Every thread of the pool leads a team at once: no helper can join, and each leader
        // runs its phases alone instead of waiting.
        let sums: Vec<usize> = pool(2).install(|| {
            use rayon::prelude::*;
            (0..8usize)
                .into_par_iter()
                .map(|k| {
                    with_team(|team| {
                        let sum = AtomicUsize::new(0);
                        team.run(100, &|i| {
                            sum.fetch_add(i * k, Ordering::Relaxed);
                        });
                        sum.into_inner()
                    })
                })
                .collect()
        });
        assert_eq!(sums, (0..8).map(|k| 4950 * k).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_in_an_item_reaches_the_caller_after_the_phase() {
        let ran = AtomicUsize::new(0);
        let caught = pool(2).install(|| {
            catch_unwind(AssertUnwindSafe(|| {
                with_team(|team| {
                    team.run(50, &|i| {
                        ran.fetch_add(1, Ordering::Relaxed);
                        assert!(i != 17, "item 17");
                    });
                })
            }))
        });
        assert!(caught.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 50, "every item runs before the panic is raised");
    }
}
