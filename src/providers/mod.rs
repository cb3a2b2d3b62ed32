//! Cloud providers: one module per cloud, each behind a cargo feature, each implementing
//! [`Rotator`]. This module picks the provider a `SecretRotation` names and builds its
//! rotator. Building does no IO; the rotators' calls do.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;

use std::sync::Arc;

use crate::api::SecretRotationSpec;
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use crate::api::SelectedProvider;
use crate::rotation::memory::MemoryStore;
use crate::rotation::{CallObserver, Credentials, ProviderError, Rotator};

/// The `SecretRotation` a rotator works for, recorded as tags on the cloud secrets it
/// creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
}

/// Tag (or label) key marking cloud secrets that rotor created.
pub const MANAGED_BY_TAG: &str = "app.kubernetes.io/managed-by";
/// Tag key naming the owning `SecretRotation` as `namespace/name`.
pub const OWNER_TAG: &str = "rotor.dev/owner";

/// Builds the [`Rotator`] for a spec. The controller keeps one factory for its lifetime.
pub trait RotatorFactory: Send + Sync {
    /// Builds a rotator for the cloud secret `spec.provider` names, using `credentials` when the
    /// spec references a credentials Secret.
    fn rotator(
        &self,
        spec: &SecretRotationSpec,
        owner: &Owner,
        credentials: Option<&Credentials>,
    ) -> Result<Box<dyn Rotator>, ProviderError>;
}

/// The real cloud providers compiled into this binary.
#[derive(Debug)]
pub struct CloudProviders {
    #[cfg(feature = "aws")]
    aws: aws::AwsFactory,
    #[cfg(feature = "azure")]
    azure: azure::AzureFactory,
    #[cfg(feature = "gcp")]
    gcp: gcp::GcpFactory,
}

impl CloudProviders {
    /// Loads each provider's ambient configuration (region, endpoint and credential chain
    /// from the environment) once. Every cloud call is reported to `observer`.
    pub async fn from_env(observer: Arc<dyn CallObserver>) -> Self {
        #[cfg(not(any(feature = "aws", feature = "azure", feature = "gcp")))]
        let _ = observer;
        Self {
            #[cfg(feature = "aws")]
            aws: aws::AwsFactory::from_env().await.with_observer(observer.clone()),
            #[cfg(feature = "azure")]
            azure: azure::AzureFactory::from_env().with_observer(observer.clone()),
            #[cfg(feature = "gcp")]
            gcp: gcp::GcpFactory::new().with_observer(observer.clone()),
        }
    }
}

impl RotatorFactory for CloudProviders {
    fn rotator(
        &self,
        spec: &SecretRotationSpec,
        owner: &Owner,
        credentials: Option<&Credentials>,
    ) -> Result<Box<dyn Rotator>, ProviderError> {
        #[cfg(not(any(feature = "aws", feature = "azure", feature = "gcp")))]
        let _ = credentials;
        match spec.provider.selected() {
            #[cfg(feature = "aws")]
            Some(SelectedProvider::Aws(aws)) => Ok(Box::new(self.aws.rotator(aws, credentials, owner)?)),
            #[cfg(feature = "azure")]
            Some(SelectedProvider::Azure(azure)) => Ok(Box::new(self.azure.rotator(azure, credentials, owner)?)),
            #[cfg(feature = "gcp")]
            Some(SelectedProvider::Gcp(gcp)) => Ok(Box::new(self.gcp.rotator(gcp, credentials, owner)?)),
            _ => Err(ProviderError::InvalidConfig {
                secret: format!("{}/{}", owner.namespace, owner.name),
                message: format!(
                    "spec.provider names {}, a provider this rotor binary was built without",
                    spec.provider.name()
                ),
            }),
        }
    }
}

/// The in-memory store serves every provider spec, keyed by the cloud secret's name, for
/// unit tests of the controller and the conformance suite.
impl RotatorFactory for MemoryStore {
    fn rotator(
        &self,
        spec: &SecretRotationSpec,
        owner: &Owner,
        _credentials: Option<&Credentials>,
    ) -> Result<Box<dyn Rotator>, ProviderError> {
        match spec.provider.selected() {
            Some(selected) => Ok(Box::new(MemoryStore::rotator(self, selected.secret_name()))),
            None => Err(ProviderError::InvalidConfig {
                secret: format!("{}/{}", owner.namespace, owner.name),
                message: "spec.provider sets no provider".to_owned(),
            }),
        }
    }
}
