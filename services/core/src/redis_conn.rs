//! The one way every Redis adapter connects.
//!
//! TLS: a `rediss://` URL connects over TLS, trusting the public (webpki) roots, or only the
//! CAs of the PEM file named by the URL's `ssl-ca` parameter (`Settings::redis` puts
//! `CHAT_REDIS_CA_FILE` there). `ssl-ca` is ours: it is taken out before the redis crate sees
//! the URL.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, RedisError, TlsCertificates};

use crate::error::{Error, Result};

/// A lazily connecting manager: a Redis outage at start-up is not fatal, calls fail fast with
/// [`Error::RedisUnavailable`] and the manager reconnects when Redis is back. `response` is
/// the longest a call may wait for its answer (a blocking read needs its block time on top).
pub fn connect(url: &str, timeout: Duration, response: Duration) -> Result<ConnectionManager> {
    let client = client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config).map_err(failed)
}

/// A failed Redis call as the core's error, counted in `chat_redis_errors_total`: every Redis
/// adapter maps the failures of its calls through this (`.map_err(failed)`), so the count
/// covers them all. Replies a caller handles itself (a missing group it then creates) are not
/// failures and do not come here. A certificate that does not verify is said in one line.
pub fn failed(err: RedisError) -> Error {
    crate::metrics::REDIS_ERRORS.inc();
    if let Some(problem) = crate::tls::certificate_problem(&err) {
        return Error::RedisUnavailable(format!(
            "the Redis server's TLS certificate did not verify: {problem} (check REDIS_URL's \
             host and CHAT_REDIS_CA_FILE)"
        ));
    }
    Error::RedisUnavailable(err.to_string())
}

/// Start-up check of a `rediss://` server's certificate: one connection, and if it fails
/// because the certificate does not verify, a one-line configuration error naming the server.
/// Any other failure (Redis down, a timeout) passes: that is an outage the lazy connections
/// ride out, not a reason to refuse to start.
pub async fn verify_certificate(url: &str, timeout: Duration) -> Result<()> {
    if !url.starts_with("rediss://") {
        return Ok(());
    }
    let client = client(url)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => match crate::tls::certificate_problem(&err) {
            Some(problem) => Err(Error::Config(format!(
                "REDIS_URL: the certificate of {} did not verify: {problem} (trusted CAs: {})",
                server(url),
                match ca_file(url) {
                    Some(file) => format!("CHAT_REDIS_CA_FILE / ssl-ca {file}"),
                    None => "the public roots; set CHAT_REDIS_CA_FILE for a private CA".into(),
                }
            ))),
            None => Ok(()),
        },
    }
}

fn client(url: &str) -> Result<Client> {
    crate::tls::install_crypto_provider();
    let Some(file) = ca_file(url) else {
        return Client::open(url).map_err(|err| Error::Config(format!("REDIS_URL: {err}")));
    };
    if !url.starts_with("rediss://") {
        return Err(Error::Config(
            "REDIS_URL: a CA file (ssl-ca, CHAT_REDIS_CA_FILE) needs a rediss:// URL".into(),
        ));
    }
    let root_cert = crate::tls::read_ca_bundle("CHAT_REDIS_CA_FILE", file.as_ref())?;
    Client::build_with_tls(
        without_ca(url),
        TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .map_err(|err| Error::Config(format!("REDIS_URL: {err}")))
}

fn ca_file(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == "ssl-ca")
        .map(|(_, v)| v.into_owned())
}

fn without_ca(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "ssl-ca")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// `host:port` of the URL, for messages (never its password).
fn server(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("?"),
            parsed.port().unwrap_or(6379)
        ),
        Err(_) => "the server".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_parameter_is_ours_and_removed_before_the_redis_crate_sees_it() {
        let url = "rediss://:pw@cache:6380/2?ssl-ca=%2Fetc%2Fca.pem&protocol=resp3";
        assert_eq!(ca_file(url).as_deref(), Some("/etc/ca.pem"));
        assert_eq!(without_ca(url), "rediss://:pw@cache:6380/2?protocol=resp3");
        assert_eq!(
            without_ca("rediss://cache:6380/?ssl-ca=/x"),
            "rediss://cache:6380/"
        );
        assert_eq!(server(url), "cache:6380");
    }

    #[test]
    fn a_ca_file_on_a_plain_redis_url_is_refused() {
        let err = client("redis://cache:6379/?ssl-ca=/etc/ca.pem")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("rediss://"), "{err}");
    }
}
