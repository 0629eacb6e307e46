//! The Elasticsearch adapter over `https://` against a local TLS server this test starts with a
//! generated CA (`openssl`, at test time): the CA file is trusted, an unrelated CA is refused
//! at start-up in one line, and each way of authenticating sends the expected `Authorization`
//! header. The server answers every request `200` with an empty body (enough for the ping and
//! the index check) and records the request heads it saw.

use std::sync::{Arc, Mutex};

use chat_core::Error;
use chat_core::config::Settings;
use chat_core::testkit::tls::TestPki;
use chat_search::Access;
use chat_search::elasticsearch::{Connection, ElasticsearchIndex, Retry};
use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const INDEX: &str = "chat_messages_tls";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

struct TlsServer {
    port: u16,
    /// The head (request line and headers) of every request, in order.
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    async fn start(pki: &TestPki) -> TlsServer {
        chat_core::tls::install_crypto_provider();
        let certs = CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to do.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { port, heads, task }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn authorization_headers(&self) -> Vec<Option<String>> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|head| {
                head.lines()
                    .filter_map(|line| line.split_once(": "))
                    .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                    .map(|(_, value)| value.to_owned())
            })
            .collect()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn settings(url: &str) -> Settings {
    let mut settings = Cli::parse_from(["chat-search-test"]).settings;
    settings.elasticsearch_url = Some(url.to_owned());
    settings.elasticsearch_ca_file = None;
    settings.elasticsearch_api_key = None;
    settings.elasticsearch_username = None;
    settings.elasticsearch_password = None;
    settings
}

/// Connects as the settings say, checks the certificate and the index (two requests).
async fn two_requests(settings: &Settings) {
    settings.validate().unwrap();
    let url = settings.elasticsearch_url.as_deref().unwrap();
    let index = ElasticsearchIndex::connect_with(
        url,
        INDEX,
        Retry::default(),
        &Connection::from_settings(settings).unwrap(),
    )
    .unwrap();
    index.verify_certificate().await.unwrap();
    index.ensure_index().await.unwrap();
}

#[tokio::test]
async fn each_way_of_authenticating_sends_its_authorization_header_over_tls() {
    let pki = TestPki::generate();
    let server = TlsServer::start(&pki).await;
    let url = server.url();
    let port = server.port;
    let cases: Vec<(Settings, Option<&str>)> = vec![
        (
            {
                let mut s = settings(&url);
                s.elasticsearch_api_key =
                    Some("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into());
                s
            },
            Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
        ),
        (
            {
                let mut s = settings(&url);
                s.elasticsearch_api_key = Some("id1:secret1".into());
                s
            },
            Some("ApiKey aWQxOnNlY3JldDE="),
        ),
        (
            {
                let mut s = settings(&url);
                s.elasticsearch_username = Some("reader".into());
                s.elasticsearch_password = Some("s3cret".into());
                s
            },
            Some("Basic cmVhZGVyOnMzY3JldA=="),
        ),
        (
            settings(&format!("https://elastic:pa%40ss@127.0.0.1:{port}")),
            Some("Basic ZWxhc3RpYzpwYUBzcw=="),
        ),
        (settings(&url), None),
    ];
    for (mut s, expected) in cases {
        s.elasticsearch_ca_file = Some(pki.ca.clone());
        let before = server.authorization_headers().len();
        two_requests(&s).await;
        let sent = server.authorization_headers();
        assert_eq!(sent.len(), before + 2, "{sent:?}");
        for header in &sent[before..] {
            assert_eq!(header.as_deref(), expected);
        }
    }
    // Credentials never travel in the request line.
    for head in server.heads.lock().unwrap().iter() {
        let line = head.lines().next().unwrap();
        assert!(
            !line.contains("pa%40ss") && !line.contains("elastic"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_start_up_in_one_line() {
    let pki = TestPki::generate();
    let server = TlsServer::start(&pki).await;
    let host = format!("127.0.0.1:{}", server.port);
    for (ca, hint) in [
        (
            Some(pki.other_ca.clone()),
            "trusted CAs: CHAT_ELASTICSEARCH_CA_FILE",
        ),
        (None, "the public roots"),
    ] {
        let mut s = settings(&server.url());
        s.elasticsearch_ca_file = ca;
        s.validate().unwrap();
        for access in [Access::Reader, Access::Writer] {
            let err = match chat_search::open(&s, access).await {
                Err(err @ Error::Config(_)) => err.to_string(),
                Err(other) => panic!("not a configuration error: {other}"),
                Ok(_) => panic!("opened against an untrusted certificate"),
            };
            assert!(!err.contains('\n'), "{err}");
            for part in [
                "ELASTICSEARCH_URL",
                host.as_str(),
                "certificate",
                "UnknownIssuer",
                hint,
            ] {
                assert!(err.contains(part), "{part} missing: {err}");
            }
        }
    }
    // No request got past a handshake.
    assert!(server.heads.lock().unwrap().is_empty());

    // A call made anyway answers `SearchUnavailable` in one line naming the certificate.
    let index = ElasticsearchIndex::connect_with(
        &server.url(),
        INDEX,
        Retry {
            attempts: 1,
            base_delay: std::time::Duration::from_millis(1),
        },
        &Connection::default(),
    )
    .unwrap();
    let err = index.ensure_index().await.unwrap_err();
    assert!(matches!(err, Error::SearchUnavailable(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        !err.contains('\n') && err.contains("certificate did not verify"),
        "{err}"
    );
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_a_configuration_error() {
    let mut s = settings("https://127.0.0.1:9200");
    s.elasticsearch_ca_file = Some("/nonexistent/ca.pem".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("CHAT_ELASTICSEARCH_CA_FILE: cannot read"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(chat_core::testkit::unique_name("chat_es_ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(
        &file,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    s.elasticsearch_ca_file = Some(file);
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("CHAT_ELASTICSEARCH_CA_FILE: ") && err.contains("not a PEM CA bundle"),
        "{err}"
    );
    s.elasticsearch_url = Some("http://127.0.0.1:9200".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("not https://"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
