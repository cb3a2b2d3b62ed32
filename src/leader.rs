//! Leader election on a `coordination.k8s.io` Lease: runs the controller only while this
//! replica holds the Lease, and stops it at once when the Lease is lost. Does IO against the
//! Kubernetes API.

use std::future::Future;

use futures::FutureExt;
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::{self, Settings};

/// Location of the Lease and how long a holder keeps it without renewing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// Identity of this replica in `spec.holderIdentity`.
    pub identity: String,
    /// Seconds a holder keeps the Lease without renewing it.
    pub duration_seconds: u64,
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the leader election Lease {namespace}/{name} failed: {message}")]
    Lease {
        namespace: String,
        name: String,
        message: String,
    },
}

/// Runs the controller whenever this replica holds the Lease, until `shutdown` completes.
/// Losing the Lease drops the controller at once, in the middle of a reconcile if need be:
/// rotations are resumable, so the next leader finishes what was in flight.
pub async fn run_when_leader(
    client: Client,
    lease: LeaseSettings,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let lease_error = |message: String| Error::Lease {
        namespace: lease.namespace.clone(),
        name: lease.name.clone(),
        message,
    };
    // Renew when a third of the duration is left, so that a slow API call does not lose it.
    let grace = (lease.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_parameters(LeaseParams::new(&lease.identity, lease.duration_seconds, grace))
        .build()
        .await
        .map_err(|error| lease_error(error.to_string()))?;
    let (mut leading, task) = manager.watch().await;
    let metrics = settings.metrics.clone();
    metrics.set_leader(false);
    info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for leadership");

    let shutdown = shutdown.shared();
    loop {
        // Standby: wait for the Lease or for shutdown.
        tokio::select! {
            () = shutdown.clone() => break,
            changed = wait_for(&mut leading, true) => if !changed { break },
        }
        info!(identity = %lease.identity, "leadership acquired");
        metrics.set_leader(true);

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let graceful = shutdown.clone();
        let controller = controller::run(client.clone(), settings.clone(), async move {
            tokio::select! {
                () = graceful => {}
                _ = stopped => {}
            }
        });
        tokio::pin!(controller);
        let shutting_down = tokio::select! {
            () = &mut controller => true,
            _ = wait_for(&mut leading, false) => {
                warn!(identity = %lease.identity, "leadership lost; stopping reconciles");
                false
            }
        };
        drop(stop);
        metrics.set_leader(false);
        metrics.untrack_all();
        if shutting_down {
            break;
        }
    }

    // Closing the channel ends the manager's task, which releases the Lease so that a
    // standby replica takes over at once instead of after the Lease expires.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => warn!(%error, "releasing the Lease failed; the next leader waits for it to expire"),
        Err(error) => warn!(%error, "the Lease manager task failed"),
    }
    info!(identity = %lease.identity, "leader election stopped");
    Ok(())
}

/// Waits until the channel's value equals `value`; false when the channel closed.
async fn wait_for(channel: &mut watch::Receiver<bool>, value: bool) -> bool {
    channel.wait_for(|current| *current == value).await.is_ok()
}
