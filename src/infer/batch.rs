//! Batching: frames of the cameras sharing a detector whose batch dimension is dynamic run
//! together, up to `max_batch` at a time, a batch waiting at most `batch_wait_ms` to fill.
//!
//! No thread of its own: the first camera thread whose frame finds nobody gathering gathers
//! the batch, runs it and hands every frame its result; the others wait for theirs. While a
//! batch runs the next one gathers, so the model's other sessions are kept busy.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A frame's input tensor, given back with the frame's result so its memory is reused.
type Done<R> = (Vec<f32>, R);

pub(super) struct Batcher<R> {
    max: usize,
    wait: Duration,
    state: Mutex<State<R>>,
    changed: Condvar,
}

struct State<R> {
    next_id: u64,
    /// Frames waiting for a batch, oldest first.
    waiting: Vec<(u64, Vec<f32>)>,
    /// A thread is gathering the next batch.
    gathering: bool,
    done: HashMap<u64, Done<R>>,
}

impl<R> Batcher<R> {
    pub(super) fn new(max: usize, wait: Duration) -> Self {
        let state =
            State { next_id: 0, waiting: Vec::new(), gathering: false, done: HashMap::new() };
        Batcher { max, wait, state: Mutex::new(state), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `input` (one frame's tensor) in a batch: `run` gets the batch's tensors, in order,
    /// and gives one result per tensor. Returns the tensor and this frame's result.
    pub(super) fn submit(&self, input: Vec<f32>, run: impl Fn(&[&[f32]]) -> Vec<R>) -> Done<R> {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push((id, input));
        // A gatherer waiting for a full batch counts this frame.
        self.changed.notify_all();
        loop {
            if let Some(done) = state.done.remove(&id) {
                return done;
            }
            let waiting = state.waiting.iter().any(|(waiting, _)| *waiting == id);
            if !waiting || state.gathering {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.gathering = true;
            let deadline = Instant::now() + self.wait;
            while state.waiting.len() < self.max {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self.changed.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            let take = state.waiting.len().min(self.max);
            let batch: Vec<(u64, Vec<f32>)> = state.waiting.drain(..take).collect();
            state.gathering = false;
            // The next batch may gather while this one runs.
            self.changed.notify_all();
            drop(state);
            let inputs: Vec<&[f32]> = batch.iter().map(|(_, tensor)| &tensor[..]).collect();
            let results = run(&inputs);
            state = self.lock();
            for ((id, tensor), result) in batch.into_iter().zip(results) {
                state.done.insert(id, (tensor, result));
            }
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn frames_arriving_together_run_together_and_each_gets_its_own_result() {
        let batcher = Arc::new(Batcher::new(4, Duration::from_millis(500)));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (batcher, sizes) = (batcher.clone(), sizes.clone());
                std::thread::spawn(move || {
                    batcher.submit(vec![i as f32], |inputs| {
                        sizes.lock().unwrap().push(inputs.len());
                        inputs.iter().map(|t| t[0] * 10.0).collect()
                    })
                })
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            let (tensor, result) = thread.join().unwrap();
            assert_eq!((tensor, result), (vec![i as f32], i as f32 * 10.0));
        }
        assert_eq!(*sizes.lock().unwrap(), [4], "one batch of four");
    }

    #[test]
    fn a_lone_frame_runs_after_the_wait() {
        let batcher = Batcher::new(8, Duration::from_millis(20));
        let started = Instant::now();
        let (_, result) = batcher.submit(vec![1.0], |inputs| vec![inputs.len()]);
        assert_eq!(result, 1);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(20) && waited < Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[test]
    fn more_frames_than_a_batch_holds_run_in_several() {
        let batcher = Arc::new(Batcher::new(2, Duration::from_millis(200)));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..5)
            .map(|i| {
                let (batcher, sizes) = (batcher.clone(), sizes.clone());
                std::thread::spawn(move || {
                    batcher
                        .submit(vec![i as f32], |inputs| {
                            sizes.lock().unwrap().push(inputs.len());
                            inputs.iter().map(|t| t[0]).collect()
                        })
                        .1
                })
            })
            .collect();
        let results: Vec<f32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results, [0.0, 1.0, 2.0, 3.0, 4.0]);
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 5);
        assert!(sizes.iter().all(|&n| n <= 2), "{sizes:?}");
    }
}
