//! Worker threads kept from one call to the next.
//!
//! The sampler splits a batch over threads and the large matrix products
//! split their rows. Threads started for each call paid their start, began
//! with empty per-thread buffers (the array pool, the kernel's packed
//! operand), and a sampling thread's own products started more: three
//! threads on two cores. These threads stay, with their buffers: a
//! two-thread step took 0.92-0.95 of the time at peptide batch 256 and
//! 0.81-0.85 at HyperGrid batch 128 (BENCHMARKS.md).
//!
//! [`map`] runs its first part on the calling thread and each other part on
//! a kept worker, and returns once all have ended. A call made inside a part
//! (a sampling worker's large product) runs all its parts in place, one
//! after the other: the threads are busy with the outer call's parts, and a
//! worker never waits for another, so no call can wait for itself. Which
//! thread runs a part changes no result: the callers split their work so
//! that every output is computed by the same operations whatever the split.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

/// One part of a [`map`] call, as a worker receives it.
struct Job {
    /// The call's `run(i)`, its lifetime erased: [`map`] does not return
    /// before the job has ended, so the closure outlives every use.
    run: *const (dyn Fn(usize) + Sync),
    part: usize,
    done: Arc<Latch>,
}

// SAFETY: `run` points to a `Sync` closure that outlives the job (see `Job::run`).
unsafe impl Send for Job {}

/// Counts the parts of a call still running, and keeps the first panic.
struct Latch {
    state: Mutex<(usize, Option<Box<dyn Any + Send>>)>,
    ended: Condvar,
}

impl Latch {
    fn end(&self, panic: Option<Box<dyn Any + Send>>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        if s.1.is_none() {
            s.1 = panic;
        }
        if s.0 == 0 {
            self.ended.notify_all();
        }
    }

    /// Waits until every part has ended; the first panic among them, if any.
    fn wait(&self) -> Option<Box<dyn Any + Send>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 > 0 {
            s = self.ended.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1.take()
    }
}

/// The kept workers' queues, started as calls first need them.
static WORKERS: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether this thread is running a part of a call (a worker always is).
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// A queue to each of the first `n` workers, starting those not running yet.
fn queues(n: usize) -> Vec<Sender<Job>> {
    let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    while workers.len() < n {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name(format!("gflownet-worker-{}", workers.len() + 1))
            .spawn(move || {
                IS_WORKER.with(|w| w.set(true));
                for job in rx {
                    // SAFETY: the caller waits for this job's end before its closure goes.
                    let run = unsafe { &*job.run };
                    let panic = catch_unwind(AssertUnwindSafe(|| run(job.part))).err();
                    job.done.end(panic);
                }
            })
            .expect("starting a worker thread");
        workers.push(tx);
    }
    workers[..n].to_vec()
}

/// How many worker threads have been started.
pub fn started() -> usize {
    WORKERS.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// `f` of each item, the first on this thread and item `i` on the `i`-th
/// kept worker thread; the results in the items' order. A panic in any part
/// is resumed here once every part has ended.
pub fn map<I: Send, O: Send>(items: Vec<I>, f: impl Fn(I) -> O + Sync) -> Vec<O> {
    if items.len() <= 1 || IS_WORKER.with(Cell::get) {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let inputs: Vec<Mutex<Option<I>>> = items.into_iter().map(|x| Mutex::new(Some(x))).collect();
    let outputs: Vec<Mutex<Option<O>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let run = |i: usize| {
        let x = inputs[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        let y = f(x.expect("each part runs once"));
        *outputs[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(y);
    };
    let done = Arc::new(Latch {
        state: Mutex::new((n - 1, None)),
        ended: Condvar::new(),
    });
    let erased: &(dyn Fn(usize) + Sync) = &run;
    // SAFETY: only the lifetime is erased; `done.wait()` below returns after
    // every job has ended, before `run` is dropped.
    let erased: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(erased) };
    let queues = queues(n - 1);
    for (part, q) in (1..n).zip(&queues) {
        let job = Job {
            run: erased,
            part,
            done: done.clone(),
        };
        if let Err(e) = q.send(job) {
            // a worker that has gone (it cannot, short of an abort): its part runs here
            let job = e.0;
            let panic = catch_unwind(AssertUnwindSafe(|| run(job.part))).err();
            done.end(panic);
        }
    }
    // the calling thread's part, during which it too counts as a worker:
    // a call made in it runs in place rather than wait for busy workers
    IS_WORKER.with(|w| w.set(true));
    let first = catch_unwind(AssertUnwindSafe(|| run(0))).err();
    IS_WORKER.with(|w| w.set(false));
    let other = done.wait();
    if let Some(p) = first.or(other) {
        resume_unwind(p);
    }
    outputs
        .into_iter()
        .map(|o| {
            o.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("each part ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_in_order_and_run_on_other_threads() {
        let out = map((0..4).collect(), |i: usize| (i * i, std::thread::current().id()));
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 1, 4, 9]);
        assert_eq!(out[0].1, std::thread::current().id());
        assert!(out[1..].iter().all(|o| o.1 != out[0].1));
        // the workers stay: a second call runs on the same threads
        let again = map((0..4).collect(), |_: usize| std::thread::current().id());
        assert_eq!(again[1..], out[1..].iter().map(|o| o.1).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn borrowed_data_and_a_call_from_a_worker() {
        let data: Vec<u64> = (1..=100).collect();
        let sums = map(data.chunks(30).collect(), |c: &[u64]| {
            // on a worker this nested call runs its parts in place
            map(c.chunks(7).collect(), |d: &[u64]| d.iter().sum::<u64>())
                .into_iter()
                .sum::<u64>()
        });
        assert_eq!(sums.iter().sum::<u64>(), 5050);
    }

    #[test]
    fn a_panic_in_a_part_reaches_the_caller_after_all_parts_end() {
        let ended = std::sync::atomic::AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            map((0..3).collect(), |i: usize| {
                if i == 1 {
                    panic!("part 1 fails");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        }));
        let msg = r.expect_err("the panic comes back");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"part 1 fails"));
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 2);
        // the worker that panicked still serves
        assert_eq!(map((0..3).collect(), |i: usize| i + 1), [1, 2, 3]);
    }
}
