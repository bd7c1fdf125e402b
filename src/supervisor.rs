//! Supervision of the long-lived background threads: each one is started
//! by [`spawn`], which names it and catches its death — a panic, or a
//! return its body reports as a failure — so that no such thread ends
//! unnoticed. Threads that live for one call, one connection or one
//! session are not supervised: whoever waits for them sees them end. Both
//! kinds start through [`spawn_named`] or [`spawn_scoped_named`].
//!
//! What follows a death depends on what the thread's loss costs
//! ([`OnDeath`]):
//!
//! - **Exit.** Without these threads dockshim goes on answering, but
//!   wrongly: `docker-events` (the state index, and every list and status
//!   call answered from it, would freeze), `log-writer` and `log-catch-up`
//!   (container logs would stop), `log-keeper` (logs cut by a dockerd
//!   restart would never be followed again) and `signals` (SIGTERM would
//!   be ignored). The death is logged, `main`'s hook
//!   ([`Supervisor::on_fatal`]) starts the graceful shutdown, and the
//!   process exits with status 1; the service manager starts it again
//!   (`Restart=always` in `packaging/systemd/dockshim.service`), and the
//!   new process rebuilds all of it from dockerd and the log files.
//! - **Report.** Without these threads one feature is down and the rest is
//!   right: `streaming` (the Exec, Attach and PortForward URLs),
//!   `metrics` (the Prometheus endpoint), `layer-sizes` (container
//!   writable-layer figures) and `image-fs-usage` (ImageFsInfo). The death
//!   is logged, and Status reports `RuntimeReady=false` naming the
//!   thread, how it died and what is lost, until dockshim is restarted.
//!
//! Every death is kept for Status, Exit ones too: a process whose hook is
//! not armed yet (or never, as in tests) still shows it. This module
//! decides nothing about CRI; it only records and calls the hook.

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Scope, ScopedJoinHandle};

/// Deaths kept for Status. Each supervised thread dies at most once, but
/// `layer-sizes` and `log-catch-up` are started again by their owners, so
/// the list needs a bound; the first deaths are the ones kept.
const MAX_DEATHS_KEPT: usize = 16;

/// What a thread's death leads to (see the module notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeath {
    /// Shut down and exit with status 1, for the service manager to
    /// restart dockshim.
    Exit,
    /// Keep serving; Status reports the loss.
    Report,
}

/// A supervised thread: its name, as `ps -L` and panic messages show it,
/// what its death leads to, and what stops working without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duty {
    pub name: &'static str,
    pub on_death: OnDeath,
    /// Completes "without it, …", for the log and Status: for example
    /// "container logs are no longer written".
    pub loss: &'static str,
}

/// How a thread's body ended, when it did not panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Whoever it worked for was dropped: nothing more is wanted of it.
    Released,
    /// It cannot go on; the text says why.
    Failed(String),
}

/// How a supervised thread died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// It panicked, with this message.
    Panicked(String),
    /// Its body returned [`Ended::Failed`] with this reason.
    Failed(String),
}

/// A supervised thread that died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub duty: Duty,
    pub cause: Cause,
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.duty.name;
        match &self.cause {
            Cause::Panicked(message) => write!(f, "thread {name} panicked: {message}")?,
            Cause::Failed(reason) => write!(f, "thread {name} stopped: {reason}")?,
        }
        write!(f, "; without it, {}", self.duty.loss)
    }
}

/// What the supervised threads of one [`Supervisor`] left behind.
#[derive(Default)]
struct Record {
    deaths: Vec<Death>,
    /// The first death of an [`OnDeath::Exit`] thread.
    fatal: Option<Death>,
    /// Called once, on the first fatal death or when armed after it.
    on_fatal: Option<Box<dyn FnOnce() + Send>>,
}

/// Starts supervised threads and keeps their deaths. Clones share one
/// record; the process's own is [`process`].
#[derive(Clone, Default)]
pub struct Supervisor {
    record: Arc<Mutex<Record>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record();
        f.debug_struct("Supervisor")
            .field("deaths", &record.deaths)
            .field("fatal", &record.fatal)
            .field("armed", &record.on_fatal.is_some())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor with no deaths and no hook.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Starts `body` on a thread named for `duty`. When it panics or
    /// returns [`Ended::Failed`], the death is logged and kept, and for an
    /// [`OnDeath::Exit`] duty the fatal hook runs. The handle is for tests;
    /// callers detach it.
    pub fn spawn<F>(&self, duty: Duty, body: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() -> Ended + Send + 'static,
    {
        self.spawn_boxed(duty, Box::new(body))
    }

    fn spawn_boxed(
        &self,
        duty: Duty,
        body: Box<dyn FnOnce() -> Ended + Send>,
    ) -> io::Result<JoinHandle<()>> {
        let supervisor = self.clone();
        spawn_named(
            duty.name.to_owned(),
            Box::new(move || {
                // Nothing the body owned is used once it has unwound: the
                // thread ends here either way, and what it shared with
                // other threads sits behind locks whose users accept a
                // poisoned lock.
                let cause = match panic::catch_unwind(AssertUnwindSafe(body)) {
                    Ok(Ended::Released) => return,
                    Ok(Ended::Failed(reason)) => Cause::Failed(reason),
                    Err(payload) => Cause::Panicked(panic_message(payload.as_ref())),
                };
                supervisor.bury(Death { duty, cause });
            }),
        )
    }

    /// Every death so far (at most [`MAX_DEATHS_KEPT`]), oldest first.
    pub fn deaths(&self) -> Vec<Death> {
        self.record().deaths.clone()
    }

    /// The first death of an [`OnDeath::Exit`] thread, if one died.
    pub fn fatal(&self) -> Option<Death> {
        self.record().fatal.clone()
    }

    /// Arms the exit path: `hook` runs once, on the thread that died, when
    /// an [`OnDeath::Exit`] thread dies — at once if one has died already.
    /// A later call replaces a hook that has not run.
    pub fn on_fatal(&self, hook: impl FnOnce() + Send + 'static) {
        let mut record = self.record();
        if record.fatal.is_some() {
            drop(record);
            hook();
        } else {
            record.on_fatal = Some(Box::new(hook));
        }
    }

    /// Records `death` and, when it is fatal, takes the hook to run.
    fn bury(&self, death: Death) {
        let hook = {
            let mut record = self.record();
            let hook = match death.duty.on_death {
                OnDeath::Exit if record.fatal.is_none() => {
                    record.fatal = Some(death.clone());
                    record.on_fatal.take()
                }
                OnDeath::Exit | OnDeath::Report => None,
            };
            if record.deaths.len() < MAX_DEATHS_KEPT {
                record.deaths.push(death.clone());
            }
            hook
        };
        match death.duty.on_death {
            OnDeath::Exit => log::error!("{death}; dockshim shuts down to be started afresh"),
            OnDeath::Report => log::error!("{death}; Status reports the runtime not ready"),
        }
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Every change to the record is a single push or replacement, so a
    /// panic while it was held cannot leave it half-written.
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's supervisor: the one [`spawn`] uses and Status reads.
pub fn process() -> &'static Supervisor {
    static PROCESS: LazyLock<Supervisor> = LazyLock::new(Supervisor::new);
    &PROCESS
}

/// Starts `body` under the process's supervisor (see [`Supervisor::spawn`])
/// and detaches it.
pub fn spawn<F>(duty: Duty, body: F) -> io::Result<()>
where
    F: FnOnce() -> Ended + Send + 'static,
{
    process().spawn(duty, body).map(drop)
}

/// Starts `body` on a thread named `name`, unsupervised: for threads that
/// live for one call, connection or session, and under the supervised ones.
/// A boxed body gives every thread started here one type, so the standard
/// library's thread start-up is built once rather than once per closure
/// (2 to 3 KB each).
pub fn spawn_named(name: String, body: Box<dyn FnOnce() + Send>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name).spawn(body)
}

/// [`spawn_named`] for a thread of `scope`, which may borrow from its
/// caller.
pub fn spawn_scoped_named<'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: String,
    body: Box<dyn FnOnce() + Send + 'scope>,
) -> io::Result<ScopedJoinHandle<'scope, ()>> {
    thread::Builder::new().name(name).spawn_scoped(scope, body)
}

/// The text `panic!` was given: a `&str` or a `String` payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(5);

    const INDEX: Duty = Duty {
        name: "test-events",
        on_death: OnDeath::Exit,
        loss: "the state index is frozen",
    };

    const FIGURES: Duty = Duty {
        name: "test-figures",
        on_death: OnDeath::Report,
        loss: "layer figures are no longer measured",
    };

    /// Runs `body` under `supervisor` and waits for the thread to end.
    fn run(supervisor: &Supervisor, duty: Duty, body: impl FnOnce() -> Ended + Send + 'static) {
        supervisor.spawn(duty, body).unwrap().join().unwrap();
    }

    /// A hook that says, over the returned channel, that it ran.
    fn armed(supervisor: &Supervisor) -> mpsc::Receiver<()> {
        let (ran, runs) = mpsc::channel();
        supervisor.on_fatal(move || ran.send(()).unwrap());
        runs
    }

    #[test]
    fn a_supervised_thread_carries_its_name() {
        let supervisor = Supervisor::new();
        let (tx, rx) = mpsc::channel();
        run(&supervisor, FIGURES, move || {
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
            Ended::Released
        });
        assert_eq!(rx.recv().unwrap().as_deref(), Some("test-figures"));
    }

    #[test]
    fn a_thread_released_by_its_owner_is_no_death() {
        let supervisor = Supervisor::new();
        let runs = armed(&supervisor);
        run(&supervisor, INDEX, || Ended::Released);
        assert_eq!(supervisor.deaths(), []);
        assert_eq!(supervisor.fatal(), None);
        assert!(runs.try_recv().is_err());
    }

    #[test]
    fn a_panicking_report_thread_is_kept_with_its_panic_message_and_nothing_exits() {
        let supervisor = Supervisor::new();
        let runs = armed(&supervisor);
        run(&supervisor, FIGURES, || {
            let depth = 3;
            panic!("walk gave up at depth {depth}")
        });
        let death = Death {
            duty: FIGURES,
            cause: Cause::Panicked("walk gave up at depth 3".to_owned()),
        };
        assert_eq!(supervisor.deaths(), std::slice::from_ref(&death));
        assert_eq!(
            death.to_string(),
            "thread test-figures panicked: walk gave up at depth 3; \
             without it, layer figures are no longer measured"
        );
        assert_eq!(supervisor.fatal(), None);
        assert!(runs.try_recv().is_err());
    }

    #[test]
    fn a_panicking_exit_thread_runs_the_fatal_hook_once() {
        let supervisor = Supervisor::new();
        let runs = armed(&supervisor);
        run(&supervisor, INDEX, || panic!("event stream parser"));
        runs.recv_timeout(WAIT).unwrap();
        let death = Death {
            duty: INDEX,
            cause: Cause::Panicked("event stream parser".to_owned()),
        };
        assert_eq!(supervisor.fatal(), Some(death.clone()));
        assert_eq!(supervisor.deaths(), std::slice::from_ref(&death));

        run(&supervisor, INDEX, || panic!("again"));
        assert!(runs.try_recv().is_err());
        assert_eq!(supervisor.fatal(), Some(death));
        assert_eq!(supervisor.deaths().len(), 2);
    }

    #[test]
    fn a_failed_return_is_a_death_like_a_panic() {
        let supervisor = Supervisor::new();
        let runs = armed(&supervisor);
        run(&supervisor, INDEX, || {
            Ended::Failed("poll failed: EBADF".to_owned())
        });
        runs.recv_timeout(WAIT).unwrap();
        assert_eq!(
            supervisor.fatal().unwrap().to_string(),
            "thread test-events stopped: poll failed: EBADF; without it, the state index is frozen"
        );
    }

    #[test]
    fn a_fatal_death_before_the_hook_is_armed_runs_it_at_once() {
        let supervisor = Supervisor::new();
        run(&supervisor, INDEX, || panic!("early"));
        let runs = armed(&supervisor);
        runs.recv_timeout(WAIT).unwrap();
    }

    #[test]
    fn a_panic_without_text_is_still_reported() {
        let supervisor = Supervisor::new();
        run(&supervisor, FIGURES, || panic::panic_any(42_u32));
        assert_eq!(
            supervisor.deaths()[0].cause,
            Cause::Panicked("(no message)".to_owned())
        );
    }

    #[test]
    fn the_kept_deaths_are_bounded() {
        let supervisor = Supervisor::new();
        for _ in 0..MAX_DEATHS_KEPT + 3 {
            run(&supervisor, FIGURES, || {
                Ended::Failed("queue closed".to_owned())
            });
        }
        assert_eq!(supervisor.deaths().len(), MAX_DEATHS_KEPT);
    }
}
