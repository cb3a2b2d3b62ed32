//! Shared helpers of the integration tests: locating the local test environment that
//! `tests/env/up.sh` starts. Each test binary includes this module with `mod support;`.
#![allow(dead_code)]

use std::path::PathBuf;

/// The running test environment, read from the variables that `target/testenv/env.sh`
/// exports. Panics with instructions when they are missing, so that no test passes by
/// skipping.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub aws_endpoint: String,
}

pub fn testenv() -> TestEnv {
    let dir = std::env::var("ROTOR_TESTENV_DIR").unwrap_or_else(|_| {
        panic!(
            "ROTOR_TESTENV_DIR is not set: start the test environment with tests/env/up.sh, \
             then run `source target/testenv/env.sh` (or use `make test`)"
        )
    });
    let dir = PathBuf::from(dir);
    let kubeconfig = dir.join("kubeconfig");
    assert!(
        kubeconfig.exists(),
        "{} does not exist: the test environment is down; run tests/env/up.sh",
        kubeconfig.display()
    );
    let aws_endpoint =
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run `source target/testenv/env.sh`");
    TestEnv {
        dir,
        kubeconfig,
        aws_endpoint,
    }
}

impl TestEnv {
    /// A Kubernetes client for the test API server's admin user.
    pub async fn kube_client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("reads target/testenv/kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("builds a client config from target/testenv/kubeconfig");
        let client = kube::Client::try_from(config).expect("builds a Kubernetes client");
        client
            .apiserver_version()
            .await
            .unwrap_or_else(|error| panic!("the test API server does not answer ({error}); run tests/env/up.sh"));
        client
    }

    /// An AWS SDK config pointing at the test environment's moto server.
    pub async fn aws_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.aws_endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await
    }
}

/// A name unique to this test run, such as `prefix-1a2b3c4d`, for namespaces and cloud
/// secrets that several test runs against one environment must not share.
pub fn unique_name(prefix: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &suffix[..8])
}
