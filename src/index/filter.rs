//! The filters of ListPodSandbox and ListContainers, as the index applies
//! them. The handlers translate the CRI filter messages into these; an
//! empty string in a CRI filter field means "no filter" and becomes `None`
//! (an empty string here also matches everything).

use std::collections::HashMap;

use super::entry::{CriState, Entry, Kind};

/// ListPodSandbox's `PodSandboxFilter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// A full sandbox ID or a prefix of one.
    pub id_prefix: Option<String>,
    /// `SANDBOX_READY` is `Some(true)`, `SANDBOX_NOTREADY` `Some(false)`.
    pub ready: Option<bool>,
    /// Every pair must be among the sandbox's CRI labels.
    pub labels: HashMap<String, String>,
}

/// ListContainers' `ContainerFilter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// A full container ID or a prefix of one.
    pub id_prefix: Option<String>,
    pub state: Option<CriState>,
    /// A full sandbox ID or a prefix of one (crictl passes what the user
    /// typed).
    pub sandbox_id: Option<String>,
    /// Every pair must be among the container's CRI labels.
    pub labels: HashMap<String, String>,
}

impl SandboxFilter {
    pub fn matches(&self, entry: &Entry) -> bool {
        entry.kind == Kind::Sandbox
            && prefix_matches(self.id_prefix.as_deref(), &entry.id)
            && self.ready.is_none_or(|ready| entry.is_ready() == ready)
            && entry.matches_selector(&self.labels)
    }
}

impl ContainerFilter {
    pub fn matches(&self, entry: &Entry) -> bool {
        entry.kind == Kind::Container
            && prefix_matches(self.id_prefix.as_deref(), &entry.id)
            && self.state.is_none_or(|state| entry.cri_state() == state)
            && self
                .sandbox_id
                .as_deref()
                .is_none_or(|sandbox| entry.sandbox_id.starts_with(sandbox))
            && entry.matches_selector(&self.labels)
    }
}

fn prefix_matches(prefix: Option<&str>, id: &str) -> bool {
    prefix.is_none_or(|prefix| id.starts_with(prefix))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entry::State;
    use super::super::testing::{entry, sandbox};
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sandbox_filter_checks_kind_id_readiness_and_labels() {
        let mut ready = sandbox("s1abc", State::Running);
        ready.labels.insert("app".to_owned(), "web".to_owned());
        let not_ready = sandbox("s2", State::Exited);
        let container = entry("s1container", State::Running);

        let all = SandboxFilter::default();
        assert!(all.matches(&ready) && all.matches(&not_ready) && !all.matches(&container));

        let by_id = SandboxFilter {
            id_prefix: Some("s1".to_owned()),
            ..SandboxFilter::default()
        };
        assert!(by_id.matches(&ready) && !by_id.matches(&not_ready));

        let only_ready = SandboxFilter {
            ready: Some(true),
            ..SandboxFilter::default()
        };
        assert!(only_ready.matches(&ready) && !only_ready.matches(&not_ready));
        let only_not_ready = SandboxFilter {
            ready: Some(false),
            ..SandboxFilter::default()
        };
        assert!(!only_not_ready.matches(&ready) && only_not_ready.matches(&not_ready));

        let by_label = SandboxFilter {
            labels: labels(&[("app", "web")]),
            ..SandboxFilter::default()
        };
        assert!(by_label.matches(&ready) && !by_label.matches(&not_ready));
    }

    #[test]
    fn container_filter_checks_state_and_sandbox_prefix() {
        let mut running = entry("c1", State::Running);
        running.sandbox_id = "sandbox-one".to_owned();
        let mut exited = entry("c2", State::Exited);
        exited.sandbox_id = "sandbox-two".to_owned();
        let orphan = entry("c3", State::Created);

        let exited_only = ContainerFilter {
            state: Some(CriState::Exited),
            ..ContainerFilter::default()
        };
        assert!(!exited_only.matches(&running) && exited_only.matches(&exited));

        let of_one = ContainerFilter {
            sandbox_id: Some("sandbox-o".to_owned()),
            ..ContainerFilter::default()
        };
        assert!(of_one.matches(&running) && !of_one.matches(&exited));
        let of_any = ContainerFilter {
            sandbox_id: Some(String::new()),
            ..ContainerFilter::default()
        };
        assert!(of_any.matches(&running) && of_any.matches(&orphan));
        assert!(!of_one.matches(&orphan));
        assert!(!ContainerFilter::default().matches(&sandbox("s1", State::Running)));
    }
}
