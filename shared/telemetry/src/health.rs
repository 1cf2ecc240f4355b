//! [`Health`]: what `/healthz` (liveness) and `/readyz` (readiness) report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A cheap, cloneable handle on the service's health, shared by its components.
///
/// Each component (`"kafka"`, `"shutdown"`, ...) marks itself unhealthy or unready with a reason
/// and clears that mark when it recovers; the service is live while no component is unhealthy,
/// and ready while none is unhealthy or unready. A new `Health` is live and ready.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    unhealthy: BTreeMap<String, String>,
    unready: BTreeMap<String, String>,
}

impl Health {
    /// A live and ready service.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clears `component`'s unhealthy mark.
    pub fn set_healthy(&self, component: &str) {
        self.state().unhealthy.remove(component);
    }

    /// Marks `component` unhealthy: `/healthz` and `/readyz` answer 503 with `reason`.
    pub fn set_unhealthy(&self, component: &str, reason: impl Into<String>) {
        self.state().unhealthy.insert(component.to_owned(), reason.into());
    }

    /// Clears `component`'s unready mark.
    pub fn set_ready(&self, component: &str) {
        self.state().unready.remove(component);
    }

    /// Marks `component` unready: `/readyz` answers 503 with `reason`.
    pub fn set_unready(&self, component: &str, reason: impl Into<String>) {
        self.state().unready.insert(component.to_owned(), reason.into());
    }

    /// `Ok` when live, else the reasons (`component: reason`, one per line).
    pub fn liveness(&self) -> Result<(), String> {
        report([&self.state().unhealthy])
    }

    /// `Ok` when ready, else the reasons (`component: reason`, one per line).
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.state();
        report([&state.unhealthy, &state.unready])
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The maps stay consistent even if a holder panicked: every update is one insert/remove.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn report<const N: usize>(maps: [&BTreeMap<String, String>; N]) -> Result<(), String> {
    let reasons: Vec<String> =
        maps.iter().flat_map(|m| m.iter()).map(|(component, reason)| format!("{component}: {reason}")).collect();
    if reasons.is_empty() { Ok(()) } else { Err(reasons.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_mark_and_clear_independently() {
        let health = Health::new();
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Ok(()));

        let kafka = health.clone();
        kafka.set_unready("kafka", "broker unreachable");
        health.set_unready("s3", "bucket missing");
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err("kafka: broker unreachable\ns3: bucket missing".into()));

        kafka.set_ready("kafka");
        assert_eq!(health.readiness(), Err("s3: bucket missing".into()));
        health.set_ready("s3");
        assert_eq!(health.readiness(), Ok(()));

        health.set_unhealthy("writer", "stuck");
        assert_eq!(health.liveness(), Err("writer: stuck".into()));
        assert_eq!(health.readiness(), Err("writer: stuck".into()), "unhealthy is also unready");
        health.set_healthy("writer");
        assert_eq!(health.liveness(), Ok(()));
    }
}
