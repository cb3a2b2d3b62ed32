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
    /// Returns a Kubernetes client for the test API server's admin user.
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

    /// Returns the https URL of the Key Vault emulator that `up.sh` starts on 127.0.0.1.
    pub fn azure_vault_url(&self) -> String {
        std::env::var("ROTOR_AZURE_VAULT_URL")
            .expect("ROTOR_AZURE_VAULT_URL is not set: run `source target/testenv/env.sh`")
    }

    /// Returns the http URL of the Google Secret Manager emulator that `up.sh` starts on
    /// 127.0.0.1.
    pub fn gcp_endpoint(&self) -> String {
        std::env::var("ROTOR_GCP_ENDPOINT").expect("ROTOR_GCP_ENDPOINT is not set: run `source target/testenv/env.sh`")
    }

    /// Returns an AWS SDK config pointing at the test environment's moto server.
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

pub mod harness {
    //! Runs rotor's controller in-process against the test environment, with a rotator
    //! factory that counts calls and can freeze mid-rotation to simulate a crash.

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::{Api, Client};
    use rotor::api::{SecretRotation, SecretRotationSpec};
    use rotor::controller::{self, Settings, SystemClock};
    use rotor::metrics::Metrics;
    use rotor::providers::{Owner, RotatorFactory};
    use rotor::rotation::{Credentials, Promoted, ProviderError, RotationId, Rotator, SecretValue, Staged, VersionId};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// Where an [`Instrumented`] rotator stops forever, after the real call returned.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum FreezeAfter {
        Stage,
        Promote,
    }

    /// Wraps a factory: counts every rotator call and can freeze after one step.
    #[derive(Clone)]
    pub struct Instrumented {
        inner: Arc<dyn RotatorFactory>,
        pub calls: Arc<AtomicUsize>,
        freeze: Arc<Mutex<Option<FreezeAfter>>>,
        pub frozen: Arc<AtomicBool>,
    }

    impl Instrumented {
        pub fn new(inner: Arc<dyn RotatorFactory>) -> Self {
            Self {
                inner,
                calls: Arc::new(AtomicUsize::new(0)),
                freeze: Arc::new(Mutex::new(None)),
                frozen: Arc::new(AtomicBool::new(false)),
            }
        }

        pub fn freeze_after(self, step: FreezeAfter) -> Self {
            *self.freeze.lock().expect("lock") = Some(step);
            self
        }

        pub fn call_count(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl RotatorFactory for Instrumented {
        fn rotator(
            &self,
            spec: &SecretRotationSpec,
            owner: &Owner,
            credentials: Option<&Credentials>,
        ) -> Result<Box<dyn Rotator>, ProviderError> {
            Ok(Box::new(InstrumentedRotator {
                inner: self.inner.rotator(spec, owner, credentials)?,
                factory: self.clone(),
            }))
        }
    }

    struct InstrumentedRotator {
        inner: Box<dyn Rotator>,
        factory: Instrumented,
    }

    impl InstrumentedRotator {
        async fn after(&self, step: FreezeAfter) {
            let freeze = *self.factory.freeze.lock().expect("lock");
            if freeze == Some(step) {
                self.factory.frozen.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
        }
    }

    #[async_trait]
    impl Rotator for InstrumentedRotator {
        fn provider(&self) -> &'static str {
            self.inner.provider()
        }

        fn secret_name(&self) -> String {
            self.inner.secret_name()
        }

        async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError> {
            self.factory.calls.fetch_add(1, Ordering::SeqCst);
            let staged = self.inner.stage(rotation, value).await;
            self.after(FreezeAfter::Stage).await;
            staged
        }

        async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError> {
            self.factory.calls.fetch_add(1, Ordering::SeqCst);
            let promoted = self.inner.promote(version).await;
            self.after(FreezeAfter::Promote).await;
            promoted
        }

        async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError> {
            self.factory.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.read(version).await
        }

        async fn current_version(&self) -> Result<Option<VersionId>, ProviderError> {
            self.factory.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.current_version().await
        }
    }

    /// A controller task limited to one namespace.
    pub struct RunningController {
        shutdown: Option<oneshot::Sender<()>>,
        handle: JoinHandle<()>,
        pub metrics: Arc<Metrics>,
    }

    impl RunningController {
        /// Stops gracefully: reconciles in progress finish first.
        pub async fn stop(mut self) {
            if let Some(shutdown) = self.shutdown.take() {
                let _ = shutdown.send(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.handle).await;
        }

        /// Ends the task at once, as a crash of the process would.
        pub async fn kill(self) {
            self.handle.abort();
            let _ = self.handle.await;
        }
    }

    pub async fn start_controller(
        client: &Client,
        namespace: &str,
        rotators: Arc<dyn RotatorFactory>,
    ) -> RunningController {
        let metrics = Arc::new(Metrics::new());
        let settings = Settings {
            rotators,
            clock: Arc::new(SystemClock),
            metrics: metrics.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            instance: Some("integration-test".to_owned()),
            namespaces: vec![namespace.to_owned()],
        };
        let (shutdown, signal) = oneshot::channel::<()>();
        let client = client.clone();
        let handle = tokio::spawn(async move {
            controller::run(client, settings, async move {
                let _ = signal.await;
            })
            .await;
        });
        RunningController {
            shutdown: Some(shutdown),
            handle,
            metrics,
        }
    }

    /// Returns the real cloud providers, configured from the environment that `env.sh` exports.
    pub async fn cloud_providers() -> Arc<dyn RotatorFactory> {
        Arc::new(rotor::providers::CloudProviders::from_env(Arc::new(Metrics::new())).await)
    }

    /// Installs the CRD from `crds/` once per test binary.
    pub async fn install_crd(client: &Client) {
        static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        INSTALLED
            .get_or_init(|| async {
                let crds: Api<
                    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
                > = Api::all(client.clone());
                let crd = rotor::api::crd();
                crds.patch(
                    "secretrotations.rotor.dev",
                    &PatchParams::apply("rotor-tests").force(),
                    &Patch::Apply(&crd),
                )
                .await
                .expect("applies the SecretRotation CRD");
                let api: Api<SecretRotation> = Api::all(client.clone());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while api.list(&Default::default()).await.is_err() {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the SecretRotation CRD is not served after 30 s"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
    }

    pub async fn create_namespace(client: &Client, prefix: &str) -> String {
        let name = super::unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("valid namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("creates the namespace");
        name
    }

    /// Returns the value under `key` of Secret `name`, or `None` when the Secret or key is
    /// missing.
    pub async fn secret_value(client: &Client, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets.get_opt(name).await.expect("reads the Secret")?;
        let bytes = secret.data?.remove(key)?;
        Some(String::from_utf8(bytes.0).expect("UTF-8 value"))
    }

    /// Polls `check` every 250 ms until it returns `Some` or `timeout` passes.
    pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Captures every log line of this test binary, at debug level, in memory.
    pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
        static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
        LOGS.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_ansi(false)
                .with_writer(move || LogWriter(writer.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("installs the log capture");
            buffer
        })
        .clone()
    }

    /// Asserts that none of `values` appears in the captured logs.
    pub fn assert_not_logged(values: &[String]) {
        let logs = captured_logs();
        let text = String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned();
        assert!(!text.is_empty(), "no log lines were captured");
        for value in values {
            assert!(!text.contains(value.as_str()), "a secret value appears in the logs");
        }
    }

    struct LogWriter(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

pub mod command {
    //! Runs command-line tools (`helm`, `kubectl`) from PATH, as `env.sh` sets it.

    use std::io::Write;
    use std::process::{Command, Output, Stdio};

    /// Runs `program` with `args`, writing `stdin` to its standard input when given.
    pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting `{program}` failed ({error}); run `source target/testenv/env.sh` to put it on PATH")
            });
        // A thread writes the input, so that a child that writes output before it has read all
        // of its input cannot deadlock with this process.
        let writer = stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            let input = input.to_owned();
            std::thread::spawn(move || pipe.write_all(input.as_bytes()))
        });
        let output = child
            .wait_with_output()
            .unwrap_or_else(|error| panic!("waiting for `{program}` failed: {error}"));
        if let Some(writer) = writer {
            writer
                .join()
                .expect("the stdin writer thread panicked")
                .unwrap_or_else(|error| panic!("writing the input of `{program}` failed: {error}"));
        }
        output
    }

    /// Runs the command and returns its standard output. Panics with its stderr when it fails.
    pub fn succeed(program: &str, args: &[&str], stdin: Option<&str>) -> String {
        let output = run(program, args, stdin);
        assert!(
            output.status.success(),
            "`{program} {}` failed with {}\nstderr:\n{}\nstdout:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
        String::from_utf8(output.stdout).expect("the output is UTF-8")
    }
}
