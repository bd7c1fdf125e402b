//! Following a pull: reading dockerd's progress stream to its end,
//! enforcing `--image-pull-progress-deadline` (time since the last progress
//! message) and `--image-pull-timeout` (time since the pull started, which
//! progress does not reset, so a registry that trickles bytes cannot hold a
//! pull forever), and turning a failed pull into the gRPC code that fits
//! it.
//!
//! It owns the policy, not the connection: it consumes any iterator of
//! progress messages, so the deadline and the error mapping are tested
//! without dockerd. Every message it returns or logs has been through
//! [`RegistryAuth::redact`].

use std::time::{Duration, Instant};

use super::auth::RegistryAuth;
use super::ImageError;
use crate::cri::error::GrpcCode;
use crate::docker::{DockerError, PullProgress};
use crate::grpc::Code;

/// How often a long pull logs where it is.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long one read of the progress stream may block before the pull
/// checks its deadline and whether the call was cancelled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The status line dockerd sends once it knows the manifest digest.
const DIGEST_STATUS_PREFIX: &str = "Digest: ";

/// Words in dockerd's and registries' failure messages, and the code each
/// means, first match wins (compared in lower case). Rate limits and a
/// full disk are exhausted resources; a registry that refuses the
/// credentials (or got none) is `UNAUTHENTICATED`, one that knows the user
/// but refuses access is `PERMISSION_DENIED`. Docker Hub answers "pull
/// access denied ... repository does not exist or may require 'docker
/// login'" for missing repositories, so that phrase is checked before
/// "denied"; Docker 29 words a registry's demand for credentials the same
/// way but names the cause ("... authorization failed: no basic auth
/// credentials"), so that cause is checked first.
const FAILURE_CODES: [(&str, Code); 17] = [
    ("no space left on device", Code::ResourceExhausted),
    ("toomanyrequests", Code::ResourceExhausted),
    ("too many requests", Code::ResourceExhausted),
    ("no basic auth credentials", Code::Unauthenticated),
    ("repository does not exist", Code::NotFound),
    ("manifest unknown", Code::NotFound),
    ("not found", Code::NotFound),
    ("unauthorized", Code::Unauthenticated),
    ("authentication required", Code::Unauthenticated),
    ("incorrect username or password", Code::Unauthenticated),
    ("denied", Code::PermissionDenied),
    ("service unavailable", Code::Unavailable),
    ("bad gateway", Code::Unavailable),
    ("gateway timeout", Code::Unavailable),
    ("connection refused", Code::Unavailable),
    ("no such host", Code::Unavailable),
    ("i/o timeout", Code::Unavailable),
];

/// The code a pull failure with this message gets, if its words say.
pub fn failure_code(message: &str) -> Option<Code> {
    let message = message.to_ascii_lowercase();
    FAILURE_CODES
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|&(_, code)| code)
}

/// The failure of a pull request that dockerd refused before streaming
/// (it answers registry errors met before the first progress message with
/// an error status, e.g. `500 unauthorized: authentication required`).
pub fn refused(image: &str, err: &DockerError, auth: &RegistryAuth) -> ImageError {
    let message = auth.redact(&err.to_string());
    ImageError::PullFailed {
        image: image.to_owned(),
        code: failure_code(&message).unwrap_or_else(|| err.code()),
        message,
    }
}

/// What a pull needs to know while it waits.
pub struct Watch<'a> {
    /// The reference being pulled, for messages.
    pub image: &'a str,
    /// `--image-pull-progress-deadline`.
    pub deadline: Duration,
    /// `--image-pull-timeout`, counted from `started`; `None`: no limit.
    pub timeout: Option<Duration>,
    /// When the pull request was sent. dockerd answers it only once it
    /// has the manifest, so the progress stream may begin well after.
    pub started: Instant,
    /// The credentials whose secrets must not leak.
    pub auth: &'a RegistryAuth,
    /// True once the CRI call is cancelled or past its deadline.
    pub cancelled: &'a dyn Fn() -> bool,
}

/// Reads `progress` to its end. The stream must yield
/// [`DockerError::Timeout`] every [`POLL_INTERVAL`] or so while dockerd is
/// silent, and stay usable after it. Returns the manifest digest dockerd
/// reported, if it did.
pub fn follow<I>(progress: I, watch: &Watch<'_>) -> Result<Option<String>, ImageError>
where
    I: IntoIterator<Item = Result<PullProgress, DockerError>>,
{
    let started = watch.started;
    let mut last_progress = Instant::now();
    let mut last_log = last_progress;
    let mut last_status = String::from("waiting for the first progress message");
    let mut digest = None;
    for item in progress {
        match item {
            Ok(message) => {
                if let Some(error) = message.error_message() {
                    let error = watch.auth.redact(error);
                    return Err(ImageError::PullFailed {
                        image: watch.image.to_owned(),
                        code: failure_code(&error).unwrap_or(Code::Unknown),
                        message: error,
                    });
                }
                if let Some(found) = message.status.strip_prefix(DIGEST_STATUS_PREFIX) {
                    digest = Some(found.trim().to_owned());
                }
                last_progress = Instant::now();
                last_status = describe(&message);
                if last_log.elapsed() >= PROGRESS_LOG_INTERVAL {
                    log::info!(
                        "pulling {}: {} ({:.0?} so far)",
                        watch.image,
                        watch.auth.redact(&last_status),
                        started.elapsed()
                    );
                    last_log = Instant::now();
                }
            }
            Err(err) if matches!(err.root(), DockerError::Timeout { .. }) => {
                if (watch.cancelled)() {
                    return Err(ImageError::PullCancelled {
                        image: watch.image.to_owned(),
                    });
                }
                if last_progress.elapsed() >= watch.deadline {
                    return Err(ImageError::PullStalled {
                        image: watch.image.to_owned(),
                        after: watch.deadline,
                        last: watch.auth.redact(&last_status),
                    });
                }
            }
            Err(err) => {
                let message = watch.auth.redact(&err.to_string());
                return Err(ImageError::PullFailed {
                    image: watch.image.to_owned(),
                    code: err.code(),
                    message,
                });
            }
        }
        // Checked after the message, so a failure dockerd reports in time
        // keeps its own code.
        if let Some(timeout) = watch.timeout {
            if started.elapsed() >= timeout {
                return Err(ImageError::PullTimedOut {
                    image: watch.image.to_owned(),
                    after: timeout,
                    last: watch.auth.redact(&last_status),
                });
            }
        }
    }
    Ok(digest)
}

/// One progress message as a line of text: `<id>: <status> <progress>`.
fn describe(message: &PullProgress) -> String {
    let mut text = String::new();
    if !message.id.is_empty() {
        text.push_str(&message.id);
        text.push_str(": ");
    }
    text.push_str(&message.status);
    if !message.progress.is_empty() {
        text.push(' ');
        text.push_str(&message.progress);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::api::v1;
    use crate::grpc::Status;

    fn status(text: &str) -> Result<PullProgress, DockerError> {
        Ok(PullProgress {
            status: text.to_owned(),
            ..PullProgress::default()
        })
    }

    fn failure(text: &str) -> Result<PullProgress, DockerError> {
        Ok(PullProgress {
            error: text.to_owned(),
            ..PullProgress::default()
        })
    }

    fn silence() -> Result<PullProgress, DockerError> {
        Err(DockerError::Timeout {
            what: "waiting for the next message",
            after: POLL_INTERVAL,
        }
        .in_call("POST", "/images/create"))
    }

    fn auth(password: &str) -> RegistryAuth {
        RegistryAuth::from_cri(&v1::AuthConfig {
            username: "u".into(),
            password: password.into(),
            ..v1::AuthConfig::default()
        })
        .unwrap()
    }

    fn follow_with(
        items: Vec<Result<PullProgress, DockerError>>,
        deadline: Duration,
        auth: &RegistryAuth,
    ) -> Result<Option<String>, ImageError> {
        let never = || false;
        follow(
            items,
            &Watch {
                image: "127.0.0.1:5000/app:v1",
                deadline,
                timeout: Some(Duration::from_secs(3600)),
                started: Instant::now(),
                auth,
                cancelled: &never,
            },
        )
    }

    #[test]
    fn a_complete_pull_reports_the_manifest_digest() {
        let items = vec![
            status("Pulling from app"),
            silence(),
            status("Digest: sha256:4664"),
            status("Status: Downloaded newer image for 127.0.0.1:5000/app:v1"),
        ];
        let digest = follow_with(items, Duration::from_secs(60), &auth("pw")).unwrap();
        assert_eq!(digest.as_deref(), Some("sha256:4664"));
    }

    #[test]
    fn an_error_in_the_stream_fails_with_a_fitting_code() {
        let cases = [
            ("manifest unknown: manifest unknown", Code::NotFound),
            (
                "unauthorized: authentication required",
                Code::Unauthenticated,
            ),
            (
                "denied: requested access to the resource is denied",
                Code::PermissionDenied,
            ),
            (
                "toomanyrequests: You have reached your pull rate limit",
                Code::ResourceExhausted,
            ),
            (
                "write /var/lib/docker/tmp/x: no space left on device",
                Code::ResourceExhausted,
            ),
            (
                "received unexpected HTTP status: 503 Service Unavailable",
                Code::Unavailable,
            ),
            ("filesystem layer verification failed", Code::Unknown),
        ];
        for (message, code) in cases {
            let items = vec![status("Pulling from app"), failure(message)];
            let err = follow_with(items, Duration::from_secs(60), &auth("pw")).unwrap_err();
            let status = Status::from(err);
            assert_eq!(status.code, code, "{message}");
            assert!(status.message.contains(message), "{}", status.message);
            assert!(
                status.message.contains("127.0.0.1:5000/app:v1"),
                "{}",
                status.message
            );
        }
    }

    #[test]
    fn docker_hubs_missing_repository_answer_is_not_found() {
        let message = "pull access denied for nope, repository does not exist or may require \
                       'docker login': denied: requested access to the resource is denied";
        assert_eq!(failure_code(message), Some(Code::NotFound));
    }

    #[test]
    fn docker_29s_demand_for_credentials_is_unauthenticated() {
        // The whole answer of Docker 29.7.2 to a pull without credentials
        // from a registry that wants them.
        let message = "failed to resolve reference \"127.0.0.1:46529/e2e/auth:v1\": pull access \
                       denied, repository does not exist or may require authorization: \
                       authorization failed: no basic auth credentials";
        assert_eq!(failure_code(message), Some(Code::Unauthenticated));
    }

    #[test]
    fn a_silent_pull_is_cancelled_after_the_deadline() {
        let deadline = Duration::from_millis(300);
        let silent = std::iter::once(status("Downloading")).chain(std::iter::repeat_with(|| {
            std::thread::sleep(Duration::from_millis(20));
            silence()
        }));
        let started = Instant::now();
        let err = follow(
            silent,
            &Watch {
                image: "app",
                deadline,
                timeout: None,
                started: Instant::now(),
                auth: &auth("pw"),
                cancelled: &|| false,
            },
        )
        .unwrap_err();
        assert!(started.elapsed() >= deadline);
        let status = Status::from(err);
        assert_eq!(status.code, Code::DeadlineExceeded);
        assert!(
            status.message.contains("no progress for 300ms"),
            "{}",
            status.message
        );
        assert!(status.message.contains("Downloading"), "{}", status.message);
    }

    #[test]
    fn progress_resets_the_deadline() {
        let deadline = Duration::from_millis(200);
        let mut items = Vec::new();
        for _ in 0..6 {
            items.push(silence());
            items.push(status("Downloading"));
        }
        let slow = items
            .into_iter()
            .inspect(|_| std::thread::sleep(Duration::from_millis(60)));
        let result = follow(
            slow,
            &Watch {
                image: "app",
                deadline,
                timeout: None,
                started: Instant::now(),
                auth: &auth("pw"),
                cancelled: &|| false,
            },
        );
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn a_trickling_pull_is_cancelled_at_the_overall_timeout() {
        let timeout = Duration::from_millis(300);
        let trickle = std::iter::repeat_with(|| {
            std::thread::sleep(Duration::from_millis(20));
            status("Downloading [>  ] 1B/100B")
        });
        let started = Instant::now();
        let err = follow(
            trickle,
            &Watch {
                image: "app",
                deadline: Duration::from_secs(60),
                timeout: Some(timeout),
                started: Instant::now(),
                auth: &auth("pw"),
                cancelled: &|| false,
            },
        )
        .unwrap_err();
        assert!(started.elapsed() >= timeout);
        let status = Status::from(err);
        assert_eq!(status.code, Code::DeadlineExceeded);
        assert!(
            status
                .message
                .contains("not finished after 300ms (--image-pull-timeout)"),
            "{}",
            status.message
        );
        assert!(status.message.contains("Downloading"), "{}", status.message);
    }

    #[test]
    fn a_silent_pull_is_cancelled_at_the_overall_timeout_too() {
        let silent = std::iter::repeat_with(|| {
            std::thread::sleep(Duration::from_millis(20));
            silence()
        });
        let err = follow(
            silent,
            &Watch {
                image: "app",
                deadline: Duration::from_secs(60),
                timeout: Some(Duration::from_millis(100)),
                started: Instant::now(),
                auth: &auth("pw"),
                cancelled: &|| false,
            },
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::PullTimedOut { .. }), "{err:?}");
    }

    #[test]
    fn the_overall_timeout_counts_from_the_request_not_the_first_message() {
        let sent = Instant::now().checked_sub(Duration::from_secs(10)).unwrap();
        let err = follow(
            vec![status("Pulling from app"), status("Digest: sha256:77")],
            &Watch {
                image: "app",
                deadline: Duration::from_secs(60),
                timeout: Some(Duration::from_secs(5)),
                started: sent,
                auth: &auth("pw"),
                cancelled: &|| false,
            },
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::PullTimedOut { .. }), "{err:?}");
    }

    #[test]
    fn a_cancelled_call_stops_waiting() {
        let polls = Cell::new(0);
        let cancelled = || {
            polls.set(polls.get() + 1);
            polls.get() > 2
        };
        let err = follow(
            std::iter::repeat_with(silence),
            &Watch {
                image: "app",
                deadline: Duration::from_secs(3600),
                timeout: None,
                started: Instant::now(),
                auth: &auth("pw"),
                cancelled: &cancelled,
            },
        )
        .unwrap_err();
        assert_eq!(Status::from(err).code, Code::Cancelled);
    }

    #[test]
    fn secrets_never_reach_the_error() {
        let items = vec![failure(
            "login as u with password hunter2 failed: unauthorized",
        )];
        let err = follow_with(items, Duration::from_secs(60), &auth("hunter2")).unwrap_err();
        let status = Status::from(err);
        assert!(!status.message.contains("hunter2"), "{}", status.message);
        assert_eq!(status.code, Code::Unauthenticated);
    }

    #[test]
    fn a_refused_request_is_classified_by_its_message() {
        let err = DockerError::Api {
            status: 500,
            message: "unauthorized: authentication required".to_owned(),
        }
        .in_call("POST", "/images/create?fromImage=x&tag=y");
        let status = Status::from(refused("x:y", &err, &auth("pw")));
        assert_eq!(status.code, Code::Unauthenticated);
        let missing = DockerError::Api {
            status: 404,
            message: "manifest for x:nope not found: manifest unknown: manifest unknown".to_owned(),
        };
        assert_eq!(
            Status::from(refused("x:nope", &missing, &auth("pw"))).code,
            Code::NotFound
        );
        let other = DockerError::Api {
            status: 400,
            message: "invalid reference format".to_owned(),
        };
        assert_eq!(
            Status::from(refused("x", &other, &auth("pw"))).code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_broken_stream_keeps_the_docker_code() {
        let broken = Err(DockerError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        let err = follow_with(
            vec![status("Pulling"), broken],
            Duration::from_secs(60),
            &auth("pw"),
        )
        .unwrap_err();
        assert_eq!(Status::from(err).code, Code::Unavailable);
    }
}
