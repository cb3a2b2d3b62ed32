//! rotor: a Kubernetes operator that rotates secrets in cloud secret stores on a schedule
//! and publishes each new value into a Kubernetes Secret.

pub mod api;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod providers;
pub mod rotation;
pub mod secret;
pub mod server;
pub mod telemetry;
