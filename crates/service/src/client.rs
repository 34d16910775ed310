//! A small client of the admin endpoints, for `wavecast grant` and scripts.

use std::time::Duration;

use crate::api::NewGrant;
use crate::policy::Grant;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service could not be reached.
    #[error("cannot reach the service at {url}")]
    Http {
        /// The endpoint.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("the service refused ({status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from {url}")]
    Decode {
        /// The endpoint.
        url: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Calls the service's admin endpoints with the admin key. The key is never in `Debug`.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

impl AdminClient {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:8089`).
    pub fn new(base: &str, admin_key: &str) -> Self {
        crate::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: admin_key.to_owned(),
            http,
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            let e: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
                error: "http_error".into(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code: e.error,
                message: e.message,
            });
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode { url, source })
    }

    /// Add a grant.
    pub async fn add_grant(&self, grant: &NewGrant) -> Result<Grant, ClientError> {
        let url = format!("{}/v1/admin/grants", self.base);
        let body = serde_json::to_vec(grant).map_err(|source| ClientError::Decode {
            url: url.clone(),
            source,
        })?;
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        self.call(req, url).await
    }

    /// List grants, optionally of one user or group.
    pub async fn list_grants(
        &self,
        user: Option<&str>,
        group: Option<&str>,
    ) -> Result<Vec<Grant>, ClientError> {
        let mut url = url::Url::parse(&format!("{}/v1/admin/grants", self.base)).map_err(|e| {
            ClientError::Refused {
                status: 0,
                code: "bad_url".into(),
                message: e.to_string(),
            }
        })?;
        if let Some(u) = user {
            url.query_pairs_mut().append_pair("user", u);
        }
        if let Some(g) = group {
            url.query_pairs_mut().append_pair("group", g);
        }
        let req = self.http.get(url.as_str());
        self.call(req, url.to_string()).await
    }

    /// Revoke a grant.
    pub async fn revoke_grant(&self, id: &str) -> Result<Grant, ClientError> {
        let url = format!("{}/v1/admin/grants/{id}/revoke", self.base);
        let req = self.http.post(&url);
        self.call(req, url).await
    }
}
