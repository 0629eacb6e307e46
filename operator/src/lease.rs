//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas never reconcile
//! at once. The holder renews every few seconds; a Lease not renewed within its duration may be
//! taken over. Every write carries the resourceVersion read, so two candidates racing for the same
//! Lease cannot both win (the loser gets 409 Conflict).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::Error;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica (the pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists yet.
    Create,
    /// Free or expired: take it over.
    TakeOver,
    /// Ours: renew it.
    Renew,
    /// Someone else holds a live Lease.
    Wait,
}

/// The pure part of the election, so it can be tested without an API server.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_none() {
            Decision::Create
        } else {
            Decision::TakeOver
        };
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            let expires = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .and_then(|t| t.0.checked_add(duration).ok());
            match expires {
                Some(expires) if expires > now => Decision::Wait,
                _ => Decision::TakeOver,
            }
        }
    }
}

fn spec_for(config: &LeaseConfig, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(config.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(15)),
        acquire_time: if ours {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    }
}

/// One attempt to become (or stay) leader; `Ok(true)` when we hold the Lease afterwards.
pub async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&config.name).await?;
    let result = match decide(current.as_ref(), &config.identity, now) {
        Decision::Wait => return Ok(false),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(config, None, now)),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Decision::TakeOver | Decision::Renew => {
            let mut lease = current.expect("decide() only returns TakeOver/Renew for an existing Lease");
            lease.spec = Some(spec_for(config, lease.spec.as_ref(), now));
            api.replace(&config.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        // Another replica wrote first; it is the leader for now.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(client: Client, config: &LeaseConfig) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    info!(lease = %config.name, identity = %config.identity, "waiting for leadership");
    loop {
        match try_acquire(&api, config).await {
            Ok(true) => {
                info!(lease = %config.name, "became leader");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election attempt failed"),
        }
        tokio::time::sleep(config.renew_every).await;
    }
}

/// Renews the Lease until a renewal has failed for a whole Lease duration; then returns, and the
/// caller must stop reconciling at once, because another replica may take over.
pub async fn hold(client: Client, config: LeaseConfig) -> Error {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew_every).await;
        match try_acquire(&api, &config).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => return Error::LeaseLost(config.name.clone()),
            Err(e) => warn!(error = %e, "renewing the leader Lease failed"),
        }
        // Stop before the Lease can expire for the others (they wait a full duration).
        if last_renewed.elapsed() + config.renew_every >= config.duration {
            return Error::LeaseLost(config.name.clone());
        }
    }
}

/// Gives the Lease up on a clean shutdown, so the next replica need not wait for it to expire.
pub async fn release(client: Client, config: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let ours = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(config.identity.as_str());
    if !ours {
        return;
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    if let Err(e) = api.replace(&config.name, &PostParams::default(), &lease).await {
        warn!(error = %e, "releasing the leader Lease failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn election_decisions() {
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let fresh: Timestamp = "2026-01-01T00:00:25Z".parse().unwrap();
        let stale: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(decide(None, "me", now), Decision::Create);
        assert_eq!(decide(Some(&lease(Some("me"), stale)), "me", now), Decision::Renew);
        assert_eq!(decide(Some(&lease(Some("other"), fresh)), "me", now), Decision::Wait);
        assert_eq!(
            decide(Some(&lease(Some("other"), stale)), "me", now),
            Decision::TakeOver
        );
        assert_eq!(decide(Some(&lease(None, fresh)), "me", now), Decision::TakeOver);
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_does_not() {
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let config = LeaseConfig {
            name: "chat-operator".into(),
            namespace: "ops".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        };
        let mut theirs = lease(Some("other"), now).spec.unwrap();
        theirs.lease_transitions = Some(3);
        assert_eq!(spec_for(&config, Some(&theirs), now).lease_transitions, Some(4));
        let mine = spec_for(&config, Some(&theirs), now);
        assert_eq!(spec_for(&config, Some(&mine), now).lease_transitions, Some(4));
    }
}
