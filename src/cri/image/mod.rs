//! The ImageService: ListImages, StreamImages, ImageStatus, PullImage,
//! RemoveImage and ImageFsInfo on top of dockerd's image store.
//!
//! Handlers here decide; the pure parts live beside them: `reference`
//! (names, IDs, normalisation and matching), `auth` (credentials, the
//! `X-Registry-Auth` header, redaction), `translate` (Docker JSON to CRI
//! messages), `pull` (progress deadline and error codes), `listing` (the
//! image list kept while dockerd's image events say nothing changed) and
//! `fs_usage` (the cached ImageFsInfo figures and the one thread that
//! refreshes them). Registry secrets never reach a log or an error message.
//!
//! Identity: an image's CRI `id` is Docker's image ID (`sha256:` and the
//! configuration digest under a graph driver, the manifest or index
//! digest under the containerd image store); PullImage returns the same
//! string, and ContainerStatus's `image_id` is the container's `Image`,
//! the same digest on both stores. Tags and digests are Docker's familiar
//! strings. RemoveImage by ID removes the image with all its tags and
//! digests; by tag or digest it removes that reference, and the image only
//! with its last reference, as `docker rmi` does.

mod auth;
mod error;
mod fs_usage;
mod listing;
mod pull;
mod reference;
mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use auth::RegistryAuth;
pub use error::{AuthError, FsUsageError, ImageError, ReferenceError};
pub use reference::{ImageQuery, Match, Reference};

use crate::api::services::{ImageService, Sink};
use crate::api::v1;
use crate::cri::error::GrpcCode;
use crate::cri::sandbox::translate::is_default_runtime_handler;
use crate::cri::sandbox::SandboxConfigError;
use crate::docker::{DockerApi, ImageInspect};
use crate::grpc::{CallContext, Code, Status};
use fs_usage::{FsUsage, Refresher};
use listing::ImageListing;
use translate::{cri_image, verbose_info, ImageFacts};

/// How long ImageFsInfo waits for the very first measurement (right after
/// start) before answering that there is none yet.
const FIRST_MEASUREMENT_WAIT: Duration = Duration::from_secs(10);
/// Images per StreamImages message: well under the 16 MiB message limit
/// even for images with hundreds of tags.
const STREAM_IMAGES_BATCH: usize = 100;

/// The node-wide settings the image calls read.
#[derive(Debug)]
pub struct ImageSettings {
    /// `--pod-infra-container-image`, reported as pinned.
    pub sandbox_image: String,
    /// `--image-pull-progress-deadline`.
    pub pull_progress_deadline: Duration,
    /// `--image-pull-timeout`; zero: no limit.
    pub pull_timeout: Duration,
}

/// The image half of the CRI.
#[derive(Debug)]
pub struct Images {
    docker: Arc<dyn DockerApi>,
    /// `--pod-infra-container-image`, reported as pinned.
    sandbox_image: Option<ImageQuery>,
    /// `--image-pull-progress-deadline`.
    pull_progress_deadline: Duration,
    /// `--image-pull-timeout`; `None`: no limit.
    pull_timeout: Option<Duration>,
    /// Image ID → the configuration's `User`. Configurations are immutable,
    /// so an entry never goes stale; ListImages drops the IDs it no longer
    /// sees.
    users: Mutex<HashMap<String, String>>,
    /// dockerd's image list, shared with the measuring thread.
    listing: Arc<ImageListing>,
    fs_usage: Arc<FsUsage>,
    /// The measuring thread's handle, once the first ImageFsInfo call has
    /// started it: threads must be started from threads that already block
    /// the signals `main` leaves to its signal thread, which the CRI worker
    /// threads do.
    refresher: Mutex<Option<Refresher>>,
}

impl Images {
    /// The ImageService with `settings`, on `docker`. The thread measuring
    /// image filesystem usage starts with the first ImageFsInfo call and
    /// ends when this value is dropped.
    pub fn new(docker: Arc<dyn DockerApi>, settings: ImageSettings) -> Images {
        let sandbox_image = match ImageQuery::parse(&settings.sandbox_image) {
            Ok(query) => Some(query),
            Err(err) => {
                log::warn!("--pod-infra-container-image: {err}; no image is reported as pinned");
                None
            }
        };
        Images {
            listing: Arc::new(ImageListing::new(Arc::clone(&docker))),
            docker,
            sandbox_image,
            pull_progress_deadline: settings.pull_progress_deadline,
            pull_timeout: Some(settings.pull_timeout).filter(|timeout| !timeout.is_zero()),
            users: Mutex::new(HashMap::new()),
            fs_usage: Arc::new(FsUsage::default()),
            refresher: Mutex::new(None),
        }
    }

    /// Starts the measuring thread unless it runs already.
    fn ensure_measuring(&self) -> Result<(), ImageError> {
        let mut refresher = lock(&self.refresher);
        if refresher.is_none() {
            let spawned = fs_usage::spawn(
                Arc::clone(&self.docker),
                Arc::clone(&self.listing),
                Arc::clone(&self.fs_usage),
            )
            .map_err(|err| ImageError::NotMeasured(format!("cannot start its thread: {err}")))?;
            *refresher = Some(spawned);
        }
        Ok(())
    }

    /// Drops the kept image list and asks for fresh figures, if anyone
    /// reads them, after the store changed.
    fn store_changed(&self) {
        self.listing.invalidate();
        if let Some(refresher) = lock(&self.refresher).as_ref() {
            refresher.poke();
        }
    }

    /// Every runtime of one dockerd shares its image store, so a pull for
    /// a RuntimeClass handler is an ordinary pull, once the handler is
    /// known to be one of dockerd's runtimes.
    fn check_runtime_handler(&self, handler: &str) -> Result<(), ImageError> {
        if is_default_runtime_handler(handler) {
            return Ok(());
        }
        let engine = self.docker.engine()?;
        if engine.has_runtime(handler) {
            return Ok(());
        }
        Err(ImageError::UnknownRuntimeHandler(
            SandboxConfigError::UnknownRuntimeHandler {
                handler: handler.to_owned(),
                known: engine.runtimes.keys().cloned().collect(),
            },
        ))
    }

    fn is_pinned(&self, id: &str, repo_tags: &[String], repo_digests: &[String]) -> bool {
        self.sandbox_image
            .as_ref()
            .is_some_and(|sandbox| sandbox.resolve(id, repo_tags, repo_digests).is_some())
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, String>> {
        lock(&self.users)
    }

    /// The image's configured user, from the cache or dockerd. `None` if
    /// the image went away meanwhile.
    fn user_of(&self, id: &str) -> Result<Option<String>, ImageError> {
        if let Some(user) = self.users().get(id) {
            return Ok(Some(user.clone()));
        }
        match self.inspect(id)? {
            Some(image) => {
                self.users()
                    .insert(image.id.clone(), image.config.user.clone());
                Ok(Some(image.config.user))
            }
            None => Ok(None),
        }
    }

    /// `GET /images/{name}/json`; `None` when dockerd has no such image.
    fn inspect(&self, name: &str) -> Result<Option<ImageInspect>, ImageError> {
        Ok(self.docker.inspect_image(name)?)
    }

    /// The image `text` names, the query that found it and how it
    /// matched; `None` if there is none. dockerd resolves the name; the
    /// answer is accepted only if it really is what was asked for, because
    /// dockerd falls back to ID-prefix search for names it does not know.
    fn find(&self, text: &str) -> Result<Option<Found>, ImageError> {
        let mut queries = vec![ImageQuery::parse(text)?];
        queries.extend(ImageQuery::as_id_prefix(text));
        for query in queries {
            if let Some(image) = self.inspect(&query.lookup_name())? {
                if let Some(how) = query.resolve(&image.id, &image.repo_tags, &image.repo_digests) {
                    self.users()
                        .insert(image.id.clone(), image.config.user.clone());
                    return Ok(Some(Found { image, query, how }));
                }
            }
        }
        Ok(None)
    }

    fn list(&self, filter: Option<&v1::ImageFilter>) -> Result<Vec<v1::Image>, ImageError> {
        let filter = match filter.and_then(|f| f.image.as_ref()) {
            Some(spec) if !spec.image.is_empty() => Some(ImageQuery::parse(&spec.image)?),
            _ => None,
        };
        self.docker.ensure_negotiated()?;
        let summaries = self.listing.list()?;
        let mut images = Vec::with_capacity(summaries.len());
        for summary in summaries.iter() {
            let wanted = filter.as_ref().is_none_or(|f| {
                f.filter_matches(&summary.id, &summary.repo_tags, &summary.repo_digests)
            });
            if !wanted {
                continue;
            }
            let Some(user) = self.user_of(&summary.id)? else {
                continue;
            };
            images.push(cri_image(ImageFacts {
                id: &summary.id,
                repo_tags: &summary.repo_tags,
                repo_digests: &summary.repo_digests,
                size: summary.size,
                user: &user,
                pinned: self.is_pinned(&summary.id, &summary.repo_tags, &summary.repo_digests),
            }));
        }
        let present: HashSet<&str> = summaries.iter().map(|s| s.id.as_str()).collect();
        self.users().retain(|id, _| present.contains(id.as_str()));
        Ok(images)
    }

    fn status(
        &self,
        request: &v1::ImageStatusRequest,
    ) -> Result<v1::ImageStatusResponse, ImageError> {
        let text = image_text(request.image.as_ref())?;
        self.docker.ensure_negotiated()?;
        let Some(Found { image, .. }) = self.find(text)? else {
            return Ok(v1::ImageStatusResponse::default());
        };
        let info = if request.verbose {
            verbose_info(&image)
        } else {
            HashMap::new()
        };
        Ok(v1::ImageStatusResponse {
            image: Some(cri_image(ImageFacts {
                id: &image.id,
                repo_tags: &image.repo_tags,
                repo_digests: &image.repo_digests,
                size: image.size,
                user: &image.config.user,
                pinned: self.is_pinned(&image.id, &image.repo_tags, &image.repo_digests),
            })),
            info,
        })
    }

    fn pull(
        &self,
        ctx: &CallContext,
        request: &v1::PullImageRequest,
    ) -> Result<String, ImageError> {
        let text = image_text(request.image.as_ref())?;
        if let Some(spec) = &request.image {
            self.check_runtime_handler(&spec.runtime_handler)?;
        }
        let reference = match ImageQuery::parse(text)? {
            ImageQuery::Reference(reference) => reference,
            ImageQuery::Id(_) => {
                return Err(ImageError::InvalidRequest(format!(
                    "cannot pull {text:?}: an image ID is not a registry reference"
                )))
            }
        };
        let auth = match &request.auth {
            Some(auth) => RegistryAuth::from_cri(auth).map_err(ImageError::InvalidAuth)?,
            None => RegistryAuth::default(),
        };
        self.docker.ensure_negotiated()?;
        let name = reference.to_string();
        log::info!("pulling image {name} with {}", auth.describe());
        let started = Instant::now();
        let header = auth.header();
        let progress = self
            .docker
            .pull_image(
                &reference.repository(),
                reference.tag_or_digest(),
                header.as_deref(),
                self.pull_timeout,
                pull::POLL_INTERVAL,
            )
            .map_err(|err| match self.pull_timeout {
                Some(after)
                    if err.code() == Code::DeadlineExceeded && started.elapsed() >= after =>
                {
                    ImageError::PullTimedOut {
                        image: name.clone(),
                        after,
                        last: "none: dockerd had not answered yet".to_owned(),
                    }
                }
                _ => pull::refused(&name, &err, &auth),
            })?;
        let cancelled = || ctx.is_cancelled();
        let manifest_digest = pull::follow(
            progress,
            &pull::Watch {
                image: &name,
                deadline: self.pull_progress_deadline,
                timeout: self.pull_timeout,
                started,
                auth: &auth,
                cancelled: &cancelled,
            },
        )?;
        self.store_changed();
        // By digest, so a tag moved by a concurrent pull cannot answer for it.
        let lookup = match reference.digest().or(manifest_digest.as_deref()) {
            Some(digest) => format!("{}@{digest}", reference.repository()),
            None => reference.canonical(),
        };
        let image = self
            .inspect(&lookup)?
            .ok_or_else(|| ImageError::PullFailed {
                image: name.clone(),
                code: Code::NotFound,
                message: format!("dockerd reported success but has no image {lookup}"),
            })?;
        log::info!(
            "pulled image {name} as {} in {:.1?}",
            image.id,
            started.elapsed()
        );
        Ok(image.id)
    }

    fn remove(&self, request: &v1::RemoveImageRequest) -> Result<(), ImageError> {
        let text = image_text(request.image.as_ref())?;
        self.docker.ensure_negotiated()?;
        let Some(Found { image, query, how }) = self.find(text)? else {
            log::debug!("image {text} is already gone");
            return Ok(());
        };
        match (how, &query) {
            (Match::Tag | Match::Digest, ImageQuery::Reference(reference)) => {
                self.delete_reference(&reference.canonical())?;
            }
            _ => self.remove_whole(&image)?,
        }
        self.users().remove(&image.id);
        self.store_changed();
        log::info!("removed image {text} ({})", image.id);
        Ok(())
    }

    /// Removes every reference of `image`, then the image. Containers using
    /// it (running or not) are checked first so nothing is untagged when
    /// the image cannot go.
    fn remove_whole(&self, image: &ImageInspect) -> Result<(), ImageError> {
        let users = self.containers_using(&image.id)?;
        if !users.is_empty() {
            return Err(ImageError::InUse {
                image: image.id.clone(),
                containers: users,
            });
        }
        for reference in image.repo_tags.iter().chain(&image.repo_digests) {
            self.delete_reference(reference)?;
        }
        self.delete_reference(&image.id)
    }

    /// Removes one reference, without force; a missing name is success.
    fn delete_reference(&self, name: &str) -> Result<(), ImageError> {
        self.docker.remove_image(name)?;
        Ok(())
    }

    /// Names (or short IDs) of the containers whose image is `id`.
    fn containers_using(&self, id: &str) -> Result<Vec<String>, ImageError> {
        Ok(self
            .docker
            .containers_of_image(id)?
            .into_iter()
            .filter(|c| c.image_id == id)
            .map(|c| match c.names.into_iter().next() {
                Some(name) => name.trim_start_matches('/').to_owned(),
                None => c.id.chars().take(12).collect(),
            })
            .collect())
    }

    fn fs_info(&self) -> Result<v1::ImageFsInfoResponse, ImageError> {
        self.ensure_measuring()?;
        let figures = self
            .fs_usage
            .latest(FIRST_MEASUREMENT_WAIT)
            .map_err(ImageError::NotMeasured)?;
        let usage = |bytes: u64| v1::FilesystemUsage {
            timestamp: figures.timestamp_ns,
            fs_id: Some(v1::FilesystemIdentifier {
                mountpoint: figures.mountpoint.clone(),
            }),
            used_bytes: Some(v1::UInt64Value { value: bytes }),
            inodes_used: Some(v1::UInt64Value {
                value: figures.inodes_used,
            }),
        };
        Ok(v1::ImageFsInfoResponse {
            image_filesystems: vec![usage(figures.image_bytes)],
            container_filesystems: vec![usage(figures.container_bytes)],
        })
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked:
/// the values guarded here are inserted, removed or replaced whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An image [`Images::find`] found.
struct Found {
    image: ImageInspect,
    query: ImageQuery,
    how: Match,
}

/// The image text of a request, which must be there.
fn image_text(spec: Option<&v1::ImageSpec>) -> Result<&str, ImageError> {
    match spec.map(|s| s.image.as_str()) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(ImageError::InvalidRequest(
            "ImageSpec.image is required".to_owned(),
        )),
    }
}

impl ImageService for Images {
    fn list_images(
        &self,
        _ctx: &CallContext,
        request: v1::ListImagesRequest,
    ) -> Result<v1::ListImagesResponse, Status> {
        let images = self.list(request.filter.as_ref())?;
        Ok(v1::ListImagesResponse { images })
    }

    fn stream_images(
        &self,
        _ctx: &CallContext,
        request: v1::StreamImagesRequest,
        sink: &mut Sink<'_, v1::StreamImagesResponse>,
    ) -> Result<(), Status> {
        let mut images = self.list(request.filter.as_ref())?;
        while !images.is_empty() {
            let rest = images.split_off(images.len().min(STREAM_IMAGES_BATCH));
            sink.send(&v1::StreamImagesResponse { images })?;
            images = rest;
        }
        Ok(())
    }

    fn image_status(
        &self,
        _ctx: &CallContext,
        request: v1::ImageStatusRequest,
    ) -> Result<v1::ImageStatusResponse, Status> {
        Ok(self.status(&request)?)
    }

    fn pull_image(
        &self,
        ctx: &CallContext,
        request: v1::PullImageRequest,
    ) -> Result<v1::PullImageResponse, Status> {
        let image_ref = self.pull(ctx, &request).map_err(|err| {
            log::warn!("{err}");
            err
        })?;
        Ok(v1::PullImageResponse { image_ref })
    }

    fn remove_image(
        &self,
        _ctx: &CallContext,
        request: v1::RemoveImageRequest,
    ) -> Result<v1::RemoveImageResponse, Status> {
        self.remove(&request)?;
        Ok(v1::RemoveImageResponse {})
    }

    fn image_fs_info(
        &self,
        _ctx: &CallContext,
        _request: v1::ImageFsInfoRequest,
    ) -> Result<v1::ImageFsInfoResponse, Status> {
        Ok(self.fs_info()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod handler_tests {
    use super::*;
    use crate::cri::testing::{self, add_container, BUSYBOX_IMAGE};
    use crate::docker::fake::{refused, status, FakeDocker};
    use crate::docker::PullProgress;

    fn images(docker: &Arc<FakeDocker>) -> Images {
        let api: Arc<dyn DockerApi> = Arc::clone(docker) as Arc<dyn DockerApi>;
        Images::new(api, testing::image_settings())
    }

    fn ctx() -> CallContext {
        CallContext::new("/runtime.v1.ImageService/PullImage", None)
    }

    fn pull(images: &Images, image: &str) -> Result<String, Status> {
        let request = v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: image.to_owned(),
                ..v1::ImageSpec::default()
            }),
            ..v1::PullImageRequest::default()
        };
        images
            .pull_image(&ctx(), request)
            .map(|pulled| pulled.image_ref)
    }

    fn remove(images: &Images, image: &str) -> Result<(), Status> {
        let request = v1::RemoveImageRequest {
            image: Some(v1::ImageSpec {
                image: image.to_owned(),
                ..v1::ImageSpec::default()
            }),
        };
        images.remove_image(&ctx(), request).map(drop)
    }

    const APP: &str = "127.0.0.1:5000/team/app:v1";

    #[test]
    fn a_pull_answers_with_the_id_of_the_image_dockerd_then_has() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.add_image(testing::image('c', &[APP]));
        assert_eq!(pull(&images, APP).unwrap(), testing::image('c', &[]).id);
        assert_eq!(
            docker.calls_of("pull_image"),
            ["pull_image 127.0.0.1:5000/team/app:v1"]
        );
    }

    #[test]
    fn a_pull_dockerd_refuses_takes_its_code_from_the_registrys_words() {
        let cases = [
            (status(404, "manifest unknown"), Code::NotFound),
            (
                status(500, "unauthorized: authentication required"),
                Code::Unauthenticated,
            ),
            (
                status(500, "toomanyrequests: slow down"),
                Code::ResourceExhausted,
            ),
            (status(500, "something else"), Code::Unknown),
            (refused(), Code::Unavailable),
        ];
        for (err, code) in cases {
            let docker = testing::docker();
            let images = images(&docker);
            let message = err.to_string();
            docker.fail("pull_image", err);
            assert_eq!(pull(&images, APP).unwrap_err().code, code, "{message}");
        }
    }

    #[test]
    fn a_pull_that_fails_in_its_stream_takes_its_code_from_the_message() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.set_pull_progress(vec![PullProgress {
            error: "write /var/lib/docker/tmp/x: no space left on device".to_owned(),
            ..PullProgress::default()
        }]);
        let err = pull(&images, APP).unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted, "{err:?}");
    }

    #[test]
    fn a_pull_dockerd_reports_done_without_the_image_is_not_found() {
        let docker = testing::docker();
        let images = images(&docker);
        let err = pull(&images, APP).unwrap_err();
        assert_eq!(err.code, Code::NotFound, "{err:?}");
    }

    #[test]
    fn pulling_an_image_id_is_an_invalid_argument_without_a_docker_call() {
        let docker = testing::docker();
        let images = images(&docker);
        let err = pull(&images, &"b".repeat(64)).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument, "{err:?}");
        assert!(docker.calls_of("pull_image").is_empty());
    }

    #[test]
    fn removing_an_image_twice_is_ok() {
        let docker = testing::docker();
        let images = images(&docker);
        remove(&images, BUSYBOX_IMAGE).unwrap();
        remove(&images, BUSYBOX_IMAGE).unwrap();
        assert!(!docker.has_image(&testing::image('b', &[]).id));
    }

    #[test]
    fn removing_an_image_a_container_uses_fails_naming_the_container() {
        let docker = testing::docker();
        let images = images(&docker);
        let index = testing::index(&docker);
        let id = testing::image('b', &[]).id;
        add_container(&docker, &index, "k8s_app", "container", "pod");
        docker.edit_container(&docker.container_ids()[0], |c| c.image = id.clone());
        let err = remove(&images, &id).unwrap_err();
        assert_eq!(err.code, Code::FailedPrecondition, "{err:?}");
        assert!(err.message.contains("k8s_app"), "{err:?}");
        assert!(docker.has_image(&id));
    }

    #[test]
    fn a_remove_dockerd_fails_keeps_its_code() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.fail(
            "remove_image",
            status(409, "image is being used by running container"),
        );
        let err = remove(&images, BUSYBOX_IMAGE).unwrap_err();
        assert_eq!(err.code, Code::FailedPrecondition, "{err:?}");
    }

    #[test]
    fn an_image_status_dockerd_cannot_answer_is_unavailable() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.fail("inspect_image", refused());
        let request = v1::ImageStatusRequest {
            image: Some(v1::ImageSpec {
                image: BUSYBOX_IMAGE.to_owned(),
                ..v1::ImageSpec::default()
            }),
            verbose: false,
        };
        let err = images.image_status(&ctx(), request).unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
    }

    fn spec(image: &str) -> Option<v1::ImageSpec> {
        Some(v1::ImageSpec {
            image: image.to_owned(),
            ..v1::ImageSpec::default()
        })
    }

    #[test]
    fn the_status_of_an_image_dockerd_does_not_have_is_empty_not_an_error() {
        let docker = testing::docker();
        let images = images(&docker);
        let request = v1::ImageStatusRequest {
            image: spec(APP),
            verbose: true,
        };
        let status = images.image_status(&ctx(), request).unwrap();
        assert_eq!(status, v1::ImageStatusResponse::default());
    }

    #[test]
    fn image_calls_without_an_image_are_invalid_arguments_without_a_docker_call() {
        let docker = testing::docker();
        let images = images(&docker);
        let status = images
            .image_status(&ctx(), v1::ImageStatusRequest::default())
            .unwrap_err();
        assert_eq!(status.code, Code::InvalidArgument, "{status:?}");
        let remove = images
            .remove_image(&ctx(), v1::RemoveImageRequest { image: spec("") })
            .unwrap_err();
        assert_eq!(remove.code, Code::InvalidArgument, "{remove:?}");
        let pull = images
            .pull_image(&ctx(), v1::PullImageRequest::default())
            .unwrap_err();
        assert_eq!(pull.code, Code::InvalidArgument, "{pull:?}");
        assert_eq!(docker.calls(), Vec::<String>::new());
    }

    #[test]
    fn a_pull_for_a_runtime_handler_dockerd_lacks_is_refused_without_pulling() {
        let docker = testing::docker();
        let images = images(&docker);
        let mut image = spec(APP);
        if let Some(image) = image.as_mut() {
            image.runtime_handler = "kata".to_owned();
        }
        let request = v1::PullImageRequest {
            image,
            ..v1::PullImageRequest::default()
        };
        let err = images.pull_image(&ctx(), request).unwrap_err();
        assert_eq!(err.code, Code::NotFound, "{err:?}");
        assert!(docker.calls_of("pull_image").is_empty());
    }

    #[test]
    fn a_list_dockerd_cannot_answer_is_unavailable() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.fail("list_images", refused());
        let err = images
            .list_images(&ctx(), v1::ListImagesRequest::default())
            .unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
    }

    #[test]
    fn a_list_filtered_by_name_holds_only_that_image() {
        let docker = testing::docker();
        let images = images(&docker);
        let request = v1::ListImagesRequest {
            filter: Some(v1::ImageFilter {
                image: spec(BUSYBOX_IMAGE),
            }),
        };
        let listed = images.list_images(&ctx(), request).unwrap().images;
        let ids: Vec<&str> = listed.iter().map(|image| image.id.as_str()).collect();
        assert_eq!(ids, [testing::image('b', &[]).id]);
        let all = images
            .list_images(&ctx(), v1::ListImagesRequest::default())
            .unwrap();
        assert_eq!(all.images.len(), 2);
    }

    fn listed_ids(images: &Images) -> Vec<String> {
        let listed = images.list_images(&ctx(), v1::ListImagesRequest::default());
        listed.unwrap().images.into_iter().map(|i| i.id).collect()
    }

    /// Images whose list is kept: the stream is up and a list was made.
    fn warm(docker: &Arc<FakeDocker>) -> Images {
        let images = images(docker);
        listed_ids(&images);
        assert!(images.listing.wait_followed(Duration::from_secs(10)));
        listed_ids(&images);
        images
    }

    #[test]
    fn a_warm_list_makes_no_docker_call() {
        let docker = testing::docker();
        let images = warm(&docker);
        let calls = docker.calls().len();
        assert_eq!(listed_ids(&images).len(), 2);
        assert_eq!(docker.calls().len(), calls + 1, "{:?}", docker.calls());
        assert_eq!(docker.calls().last().unwrap(), "ensure_negotiated ");
    }

    #[test]
    fn an_image_pulled_shows_in_the_next_list() {
        let docker = testing::docker();
        let images = warm(&docker);
        // dockerd's event for it has not arrived.
        docker.add_image(testing::image('c', &[APP]));
        let id = pull(&images, APP).unwrap();
        assert!(listed_ids(&images).contains(&id));
    }

    #[test]
    fn an_image_removed_is_gone_from_the_next_list() {
        let docker = testing::docker();
        let images = warm(&docker);
        let id = testing::image('b', &[]).id;
        assert!(listed_ids(&images).contains(&id));
        remove(&images, BUSYBOX_IMAGE).unwrap();
        assert!(!listed_ids(&images).contains(&id));
    }

    #[test]
    fn image_fs_info_dockerd_cannot_describe_is_unavailable() {
        let docker = testing::docker();
        let images = images(&docker);
        docker.fail("engine", refused());
        let err = images
            .image_fs_info(&ctx(), v1::ImageFsInfoRequest::default())
            .unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
    }

    /// A client of StreamImages that keeps how many images each message held.
    struct Client(Vec<usize>);

    impl crate::grpc::MessageSink for Client {
        fn send(&mut self, message: &[u8]) -> Result<(), Status> {
            let message: v1::StreamImagesResponse = prost::Message::decode(message).unwrap();
            self.0.push(message.images.len());
            Ok(())
        }
    }

    #[test]
    fn streamed_images_come_in_batches() {
        let docker = FakeDocker::new();
        for n in 0..=STREAM_IMAGES_BATCH {
            docker.add_image(ImageInspect {
                id: format!("sha256:{n:064x}"),
                repo_tags: vec![format!("127.0.0.1:5000/app-{n}:v1")],
                ..ImageInspect::default()
            });
        }
        let images = images(&docker);
        let mut client = Client(Vec::new());
        images
            .stream_images(
                &ctx(),
                v1::StreamImagesRequest::default(),
                &mut Sink::new(&mut client),
            )
            .unwrap();
        assert_eq!(client.0, [STREAM_IMAGES_BATCH, 1]);
    }
}
