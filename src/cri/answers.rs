//! Encoded answers to the list calls the kubelet repeats every second
//! (ListContainers and ListPodSandbox), kept while nothing they were built
//! from has changed, so a repeated question costs a copy of the bytes and
//! nothing is built or encoded.
//!
//! An answer is kept under the request's filter and the generation of its
//! sources (the state index's; for sandboxes also the checkpoints') read
//! before the sources were queried. An answer built while a change landed
//! may already show that change under the older generation, which no later
//! call reads again: it is rebuilt once, never served stale. Sources that
//! cannot vouch for themselves (a cold index) give no generation, and
//! their answers are built every time and not kept.
//!
//! At most [`KEPT_ANSWERS`] answers are kept per list, the least recently
//! used going first; the kubelet asks each list with two filters. A kept
//! answer can also be taken by a caller that must not wait
//! ([`EncodedAnswers::at_hand`]): the server's connection thread, which
//! then answers without handing the call to a worker.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

/// Answers kept per list call.
pub const KEPT_ANSWERS: usize = 4;

/// One list call's kept answers, by filter `F` (or none) and source
/// generation `G`.
pub struct EncodedAnswers<F, G> {
    /// Least recently used first.
    kept: Mutex<Vec<Kept<F, G>>>,
}

struct Kept<F, G> {
    filter: Option<F>,
    generation: G,
    bytes: Bytes,
}

impl<F, G> Default for EncodedAnswers<F, G> {
    fn default() -> EncodedAnswers<F, G> {
        EncodedAnswers {
            kept: Mutex::new(Vec::new()),
        }
    }
}

impl<F, G> fmt::Debug for EncodedAnswers<F, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedAnswers")
            .field("kept", &lock(&self.kept).len())
            .finish()
    }
}

impl<F: PartialEq + Clone, G: PartialEq + Copy> EncodedAnswers<F, G> {
    /// The encoded answer to `filter`: the kept one if it was built at
    /// `generation`, otherwise what `build` makes, kept when the
    /// generation is known. `generation` must be read before `build`
    /// queries its sources.
    pub fn answer<M: prost::Message, E>(
        &self,
        filter: Option<&F>,
        generation: Option<G>,
        build: impl FnOnce() -> Result<M, E>,
    ) -> Result<Bytes, E> {
        if let Some(bytes) = generation.and_then(|generation| self.kept(filter, generation)) {
            return Ok(bytes);
        }
        let bytes = Bytes::from(build()?.encode_to_vec());
        if let Some(generation) = generation {
            self.keep(filter, generation, bytes.clone());
        }
        Ok(bytes)
    }

    /// The kept answer to `filter` built at `generation`, unless another
    /// caller is using the answers this very moment.
    pub fn at_hand(&self, filter: Option<&F>, generation: G) -> Option<Bytes> {
        let mut kept = self.kept.try_lock().ok()?;
        take(&mut kept, filter, generation)
    }

    fn kept(&self, filter: Option<&F>, generation: G) -> Option<Bytes> {
        take(&mut lock(&self.kept), filter, generation)
    }

    fn keep(&self, filter: Option<&F>, generation: G, bytes: Bytes) {
        let mut kept = lock(&self.kept);
        kept.retain(|kept| kept.filter.as_ref() != filter);
        if kept.len() >= KEPT_ANSWERS {
            kept.remove(0);
        }
        kept.push(Kept {
            filter: filter.cloned(),
            generation,
            bytes,
        });
    }
}

/// The answer in `kept` to `filter` built at `generation`, now the most
/// recently used.
fn take<F: PartialEq, G: PartialEq>(
    kept: &mut Vec<Kept<F, G>>,
    filter: Option<&F>,
    generation: G,
) -> Option<Bytes> {
    let at = kept
        .iter()
        .position(|kept| kept.filter.as_ref() == filter && kept.generation == generation)?;
    let hit = kept.remove(at);
    let bytes = hit.bytes.clone();
    kept.push(hit);
    Some(bytes)
}

/// The kept answers are whole values at every step, so a panic elsewhere
/// cannot leave them half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;
    use crate::api::v1;

    fn version(name: &str) -> v1::VersionResponse {
        v1::VersionResponse {
            runtime_name: name.to_owned(),
            ..v1::VersionResponse::default()
        }
    }

    /// Answers `filter` at `generation`, counting the builds in `builds`.
    fn ask(
        answers: &EncodedAnswers<&'static str, u64>,
        filter: &'static str,
        generation: Option<u64>,
        builds: &Cell<u32>,
    ) -> Bytes {
        answers
            .answer(Some(&filter), generation, || {
                builds.set(builds.get() + 1);
                Ok::<_, Infallible>(version(&format!("{filter}@{generation:?}")))
            })
            .unwrap()
    }

    #[test]
    fn a_repeated_question_is_answered_from_the_kept_bytes() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        let first = ask(&answers, "all", Some(1), &builds);
        let again = ask(&answers, "all", Some(1), &builds);
        assert_eq!(builds.get(), 1);
        assert_eq!(again.as_ptr(), first.as_ptr());
        let decoded: v1::VersionResponse = prost::Message::decode(again).unwrap();
        assert_eq!(decoded, version("all@Some(1)"));
    }

    #[test]
    fn a_new_generation_builds_again_and_replaces_the_old_answer() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        ask(&answers, "all", Some(1), &builds);
        let newer = ask(&answers, "all", Some(2), &builds);
        assert_eq!(builds.get(), 2);
        assert_eq!(lock(&answers.kept).len(), 1);
        assert_eq!(ask(&answers, "all", Some(2), &builds), newer);
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn each_filter_has_its_own_answer() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        let all = ask(&answers, "all", Some(1), &builds);
        let running = ask(&answers, "running", Some(1), &builds);
        assert_ne!(all, running);
        assert_eq!(ask(&answers, "all", Some(1), &builds), all);
        assert_eq!(ask(&answers, "running", Some(1), &builds), running);
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn without_a_generation_every_answer_is_built_and_none_is_kept() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        ask(&answers, "all", None, &builds);
        ask(&answers, "all", None, &builds);
        assert_eq!(builds.get(), 2);
        assert!(lock(&answers.kept).is_empty());
    }

    #[test]
    fn the_least_recently_used_answer_goes_first() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        let filters = ["a", "b", "c", "d", "e"];
        for filter in &filters[..KEPT_ANSWERS] {
            ask(&answers, filter, Some(1), &builds);
        }
        // "a" is used again, so "b" is the one the fifth filter pushes out.
        ask(&answers, "a", Some(1), &builds);
        ask(&answers, filters[KEPT_ANSWERS], Some(1), &builds);
        let built = builds.get();
        ask(&answers, "a", Some(1), &builds);
        assert_eq!(builds.get(), built);
        ask(&answers, "b", Some(1), &builds);
        assert_eq!(builds.get(), built + 1);
    }

    #[test]
    fn an_answer_at_hand_is_the_kept_one_of_that_generation_unless_the_answers_are_busy() {
        let answers = EncodedAnswers::default();
        let builds = Cell::new(0);
        assert_eq!(answers.at_hand(Some(&"all"), 1), None);
        let kept = ask(&answers, "all", Some(1), &builds);
        assert_eq!(answers.at_hand(Some(&"all"), 1), Some(kept));
        assert_eq!(answers.at_hand(Some(&"all"), 2), None);
        assert_eq!(answers.at_hand(None, 1), None);
        let busy = lock(&answers.kept);
        assert_eq!(answers.at_hand(Some(&"all"), 1), None);
        drop(busy);
    }

    #[test]
    fn a_failed_build_keeps_nothing() {
        let answers: EncodedAnswers<&str, u64> = EncodedAnswers::default();
        let failed = answers.answer(Some(&"all"), Some(1), || {
            Err::<v1::VersionResponse, _>("down")
        });
        assert_eq!(failed, Err("down"));
        assert!(lock(&answers.kept).is_empty());
    }
}
