//! The names ContainerStatus reports for a container's image — a tag and a
//! repository digest — kept per image ID for a while, so that a warm
//! ContainerStatus makes no Docker call.
//!
//! An image ID names fixed content, but the tags and digests that point at
//! it change when an image is tagged, pulled or removed; a copy is
//! therefore trusted for [`NAMES_TTL`] only. A failed look-up is not kept:
//! the names are decoration, and the next call asks again. The cache must
//! not grow with the node's history: it holds at most [`MAX_IMAGES`] IDs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::docker::DockerApi;

/// How long a tag and digest read from dockerd are reported without asking
/// again.
pub const NAMES_TTL: Duration = Duration::from_secs(30);
/// Image IDs remembered at most; far above the images one node runs.
const MAX_IMAGES: usize = 512;

/// A tag and a repository digest of one image; empty when it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageNames {
    pub tag: String,
    pub repo_digest: String,
}

#[derive(Debug)]
struct Cached {
    read_at: Instant,
    names: ImageNames,
}

/// Image ID → names, shared by every ContainerStatus and event.
#[derive(Debug, Default)]
pub struct ImageNamesCache {
    by_id: Mutex<HashMap<String, Cached>>,
}

impl ImageNamesCache {
    /// The names of `image_id`: a copy younger than [`NAMES_TTL`], else
    /// one image inspect. A failed inspect gives empty names.
    pub fn get(&self, docker: &dyn DockerApi, image_id: &str) -> ImageNames {
        if let Some(names) = self.fresh(image_id, Instant::now()) {
            return names;
        }
        match docker.inspect_image(image_id) {
            Ok(Some(inspect)) => {
                let names = ImageNames {
                    tag: inspect.repo_tags.into_iter().next().unwrap_or_default(),
                    repo_digest: inspect.repo_digests.into_iter().next().unwrap_or_default(),
                };
                self.put(image_id, names.clone(), Instant::now());
                names
            }
            Ok(None) => ImageNames::default(),
            Err(err) => {
                log::debug!("cannot read the names of image {image_id}: {err}");
                ImageNames::default()
            }
        }
    }

    fn fresh(&self, image_id: &str, now: Instant) -> Option<ImageNames> {
        let by_id = self.lock();
        let cached = by_id.get(image_id)?;
        (now.saturating_duration_since(cached.read_at) < NAMES_TTL).then(|| cached.names.clone())
    }

    fn put(&self, image_id: &str, names: ImageNames, now: Instant) {
        let mut by_id = self.lock();
        if by_id.len() >= MAX_IMAGES && !by_id.contains_key(image_id) {
            by_id.retain(|_, cached| now.saturating_duration_since(cached.read_at) < NAMES_TTL);
            if by_id.len() >= MAX_IMAGES {
                by_id.clear();
            }
        }
        by_id.insert(
            image_id.to_owned(),
            Cached {
                read_at: now,
                names,
            },
        );
    }

    /// Every change to the map is one insert, retain or clear, so a panic
    /// while it was locked cannot leave it inconsistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tag: &str) -> ImageNames {
        ImageNames {
            tag: tag.to_owned(),
            repo_digest: String::new(),
        }
    }

    #[test]
    fn names_are_trusted_until_they_are_older_than_the_ttl() {
        let cache = ImageNamesCache::default();
        let then = Instant::now();
        cache.put("sha256:a", names("busybox:1"), then);
        assert_eq!(cache.fresh("sha256:a", then), Some(names("busybox:1")));
        let almost = then + NAMES_TTL - Duration::from_millis(1);
        assert_eq!(cache.fresh("sha256:a", almost), Some(names("busybox:1")));
        assert_eq!(cache.fresh("sha256:a", then + NAMES_TTL), None);
        assert_eq!(cache.fresh("sha256:b", then), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = ImageNamesCache::default();
        let now = Instant::now();
        for n in 0..MAX_IMAGES * 3 {
            cache.put(&format!("sha256:{n}"), names("x"), now);
            assert!(cache.lock().len() <= MAX_IMAGES);
        }
        let last = format!("sha256:{}", MAX_IMAGES * 3 - 1);
        assert_eq!(cache.fresh(&last, now), Some(names("x")));
    }
}
