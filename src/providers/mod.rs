//! Cloud providers: one module per cloud, each behind a cargo feature, each implementing
//! [`Rotator`]. This module picks the provider a `SecretRotation` names and builds its
//! rotator. Building does no IO; the rotators' calls do.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;

use crate::api::SecretRotationSpec;
use crate::rotation::memory::MemoryStore;
use std::sync::Arc;

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

/// Builds the [`Rotator`] for a spec. The controller holds one factory for its lifetime.
pub trait RotatorFactory: Send + Sync {
    /// A rotator for the cloud secret `spec.provider` names, using `credentials` when the
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
        #[cfg(not(any(feature = "aws", feature = "azure")))]
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
        #[cfg(feature = "aws")]
        if let Some(aws) = &spec.provider.aws {
            return Ok(Box::new(self.aws.rotator(aws, credentials, owner)?));
        }
        #[cfg(feature = "azure")]
        if let Some(azure) = &spec.provider.azure {
            return Ok(Box::new(self.azure.rotator(azure, credentials, owner)?));
        }
        #[cfg(feature = "gcp")]
        if let Some(gcp) = &spec.provider.gcp {
            return Ok(Box::new(self.gcp.rotator(gcp, credentials, owner)?));
        }
        let _ = (owner, credentials);
        Err(ProviderError::InvalidConfig {
            secret: format!("{}/{}", owner.namespace, owner.name),
            message: "spec.provider names a provider this rotor binary was built without".to_owned(),
        })
    }
}

/// The in-memory store serves every provider spec, keyed by the cloud secret's name, for
/// unit tests of the controller.
impl RotatorFactory for MemoryStore {
    fn rotator(
        &self,
        spec: &SecretRotationSpec,
        owner: &Owner,
        _credentials: Option<&Credentials>,
    ) -> Result<Box<dyn Rotator>, ProviderError> {
        if let Some(gcp) = &spec.provider.gcp {
            return Ok(Box::new(MemoryStore::rotator(self, &gcp.secret_id)));
        }
        if let Some(azure) = &spec.provider.azure {
            return Ok(Box::new(MemoryStore::rotator(self, &azure.secret_name)));
        }
        match &spec.provider.aws {
            Some(aws) => Ok(Box::new(MemoryStore::rotator(self, &aws.secret_id))),
            None => Err(ProviderError::InvalidConfig {
                secret: format!("{}/{}", owner.namespace, owner.name),
                message: "the memory store needs a secret id or a secret name".to_owned(),
            }),
        }
    }
}
