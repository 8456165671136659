//! A small client for a REAL kube-apiserver (scripts/kube-apiserver.sh), for the tests that
//! set up objects there: create, replace and delete ConfigMaps, Secrets, ServiceAccounts,
//! Roles and RoleBindings, and ask for a ServiceAccount token (TokenRequest). Requests go
//! over the crate's own TLS and HTTP layers with the admin token; bodies are built and read
//! with serde_json. It never starts or stops the server and never runs the loader.
//!
//! The server is named by the environment that `scripts/kube-apiserver.sh start` writes:
//! `KUBE_URL`, `KUBE_CA`, `KUBE_TOKEN_FILE`, `KUBE_VERSION`, and `KUBE_STATE` (its state
//! directory, for `restart-apiserver` and `compact`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_xds_configmap_loader::config::Trust;
use envoy_xds_configmap_loader::{http, tls};
use serde_json::{json, Value};

/// A running real API server, from the environment.
pub struct Kube {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub ca: PathBuf,
    pub token_file: PathBuf,
    pub version: String,
    pub state: PathBuf,
    token: String,
}

impl Kube {
    /// The server the environment names, or `None` when there is none.
    pub fn from_env() -> Option<Kube> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let url = var("KUBE_URL")?;
        let rest = url.strip_prefix("https://")?;
        let (host, port) = rest.rsplit_once(':')?;
        let token_file = PathBuf::from(var("KUBE_TOKEN_FILE")?);
        let token = std::fs::read_to_string(&token_file)
            .ok()?
            .trim()
            .to_string();
        Some(Kube {
            host: host.trim_matches(['[', ']']).to_string(),
            port: port.trim_end_matches('/').parse().ok()?,
            url,
            ca: PathBuf::from(var("KUBE_CA")?),
            token_file,
            version: var("KUBE_VERSION").unwrap_or_default(),
            state: PathBuf::from(var("KUBE_STATE").unwrap_or_default()),
            token,
        })
    }

    /// One request with the admin token; the status code and the body as JSON (`Null` when
    /// the body is empty or not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body, "application/json")
    }

    /// One request with `token`, the body sent as `content_type`.
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> (u16, Value) {
        let config = tls::client_config(&Trust::CaFile(self.ca.clone())).expect("the server's CA");
        let timeout = Duration::from_secs(10);
        let mut stream = tls::connect(&self.host, self.port, Some(&config), timeout, timeout)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let auth = format!("Bearer {token}");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", content_type),
            ("Accept", "application/json"),
        ];
        let host = format!("{}:{}", self.host, self.port);
        http::write_request(
            &mut stream,
            &http::Request {
                method,
                host: &host,
                path_and_query: path,
                headers: &headers,
                body: &bytes,
            },
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let mut resp = http::read_response(stream, false).unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.head.status;
        let body = resp.read_body(16 << 20).unwrap_or_default();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `call`, which must answer 2xx.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Creates namespace `ns` (a fresh one per test keeps tests apart on one server).
    pub fn namespace(&self, ns: &str) {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let (status, v) = self.call("POST", "/api/v1/namespaces", Some(&body));
        assert!(
            status == 201 || status == 409,
            "namespace {ns}: {status} {v}"
        );
    }

    /// Creates or replaces `kind` (`configmaps`, `secrets`, ...) `ns/name` with `object`
    /// (its metadata name and namespace filled in); returns the stored object.
    pub fn put(&self, ns: &str, plural: &str, name: &str, mut object: Value) -> Value {
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(ns);
        let collection = format!("/api/v1/namespaces/{ns}/{plural}");
        let (status, v) = self.call("POST", &collection, Some(&object));
        match status {
            201 => v,
            409 => self.ok("PUT", &format!("{collection}/{name}"), Some(&object)),
            _ => panic!("create {plural} {ns}/{name}: {status} {v}"),
        }
    }

    /// A ConfigMap `ns/name` with text `data`, created or replaced; its resourceVersion.
    pub fn configmap(&self, ns: &str, name: &str, data: &[(&str, &str)]) -> String {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let v = self.put(
            ns,
            "configmaps",
            name,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": data}),
        );
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Deletes `plural` `ns/name`; it must exist.
    pub fn delete(&self, ns: &str, plural: &str, name: &str) {
        self.ok(
            "DELETE",
            &format!("/api/v1/namespaces/{ns}/{plural}/{name}"),
            None,
        );
    }

    /// A token for ServiceAccount `ns/sa` from TokenRequest, bound to Secret `ns/secret`
    /// (deleting that Secret revokes the token).
    pub fn token_request(&self, ns: &str, sa: &str, secret: &str) -> String {
        let uid = self.ok(
            "GET",
            &format!("/api/v1/namespaces/{ns}/secrets/{secret}"),
            None,
        )["metadata"]["uid"]
            .clone();
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": secret, "uid": uid}
            }
        });
        let v = self.ok(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
            Some(&body),
        );
        v["status"]["token"].as_str().expect("a token").to_string()
    }

    /// Runs `scripts/kube-apiserver.sh COMMAND` on this server's state directory.
    pub fn script(&self, command: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kube-apiserver.sh");
        let status = std::process::Command::new(script)
            .args([command, &self.state.display().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run scripts/kube-apiserver.sh");
        assert!(status.success(), "kube-apiserver.sh {command}: {status}");
    }
}
