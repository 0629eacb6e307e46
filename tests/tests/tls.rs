//! TLS to managed-style services, against real servers this file starts: a private `mariadbd`
//! with a generated certificate and a user created `REQUIRE SSL`, and a private
//! `redis-server` that listens only on `--tls-port`. The api reaches both with the CA files
//! (`CHAT_DATABASE_CA_FILE`, `CHAT_REDIS_CA_FILE`); a server whose certificate does not verify
//! is refused with one line naming the setting, the server and the certificate.
//!
//! MariaDB has no `caching_sha2_password`, so MySQL 8's full authentication is not exercised
//! here (see the README's TLS section).

use std::time::Duration;

use chat_core::Error;
use chat_core::config::{Database, Settings};
use chat_core::domain::Sequence;
use chat_core::numbers::{Numbers, RedisNumbers};
use chat_core::queue::{Group, Queue, RedisQueue};
use chat_core::testkit::tls::{PrivateMariaDb, PrivateTlsRedis, TestPki};
use chat_core::testkit::unique_name;
use chat_core::wiring::{self, Schema};
use chat_search::Access;
use chat_tests::{Mode, TestApp, base_settings};
use reqwest::StatusCode;
use sqlx::Connection;
use sqlx::mysql::MySqlConnection;

/// Settings on a temp directory (embedded search, no Redis) pointing at `database_url`.
fn settings(dir: &std::path::Path, database_url: Option<String>) -> Settings {
    let mut settings = base_settings(dir);
    settings.database_url = database_url;
    settings
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name("chat_tls"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_one_line(message: &str) {
    assert!(
        !message.contains('\n') && message.len() < 400,
        "not one short line: {message}"
    );
}

fn mysql_url(settings: &Settings) -> String {
    match settings.database().unwrap() {
        Database::MySql(url) => url,
        other => panic!("expected MySQL, got {other:?}"),
    }
}

/// The session's TLS version: empty when the connection is not encrypted.
async fn ssl_version(url: &str) -> String {
    let mut conn = MySqlConnection::connect(url).await.expect("connect");
    let (_, version): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    version
}

#[tokio::test]
async fn mysql_over_tls_with_the_ca_file_migrates_and_answers_queries() {
    let pki = TestPki::generate();
    let db = PrivateMariaDb::start(&pki).await;
    let dir = temp_dir();

    let mut s = settings(&dir, Some(db.url("?ssl-mode=VERIFY_CA")));
    s.database_ca_file = Some(pki.ca.clone());
    s.validate().unwrap();
    assert_eq!(wiring::migrate(&s, false).await.unwrap(), "mysql");
    let url = mysql_url(&s);
    assert!(ssl_version(&url).await.starts_with("TLS"), "not encrypted");
    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(applied > 0);

    // A CA without ssl-mode means VERIFY_IDENTITY: the certificate names 127.0.0.1, so the
    // schema check (what `api` does at start) passes with the hostname checked too.
    let mut s = settings(&dir, Some(db.url("")));
    s.database_ca_file = Some(pki.ca.clone());
    assert!(mysql_url(&s).contains("ssl-mode=VERIFY_IDENTITY"));
    let search = chat_search::open(&s, Access::Reader).await.unwrap();
    let backend = wiring::open(&s, Schema::Check, search).await.unwrap();
    assert_eq!(backend.service.health().await.database, Ok(()));

    // The URL's own ssl-ca works without the setting.
    let s = settings(
        &dir,
        Some(db.url(&format!(
            "?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            pki.ca.display()
        ))),
    );
    s.validate().unwrap();
    wiring::migrate(&s, false).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_require_ssl_user_is_refused_without_tls() {
    let pki = TestPki::generate();
    let db = PrivateMariaDb::start(&pki).await;
    let dir = temp_dir();
    let s = settings(&dir, Some(db.url("?ssl-mode=DISABLED")));
    let err = wiring::migrate(&s, false).await.unwrap_err().to_string();
    assert_one_line(&err);
    assert!(err.contains("Access denied for user 'tls_user'"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_database_certificate_from_another_ca_is_refused_in_one_line() {
    let pki = TestPki::generate();
    let db = PrivateMariaDb::start(&pki).await;
    let dir = temp_dir();
    for mode in ["?ssl-mode=VERIFY_CA", "?ssl-mode=VERIFY_IDENTITY", ""] {
        let mut s = settings(&dir, Some(db.url(mode)));
        s.database_ca_file = Some(pki.other_ca.clone());
        s.validate().unwrap();
        // `migrate` (and `serve`) stop at once…
        let err = wiring::migrate(&s, false).await.unwrap_err().to_string();
        assert_one_line(&err);
        for part in [
            "certificate",
            "UnknownIssuer",
            "DATABASE_URL",
            "CHAT_DATABASE_CA_FILE",
        ] {
            assert!(err.contains(part), "{mode}: {part} missing: {err}");
        }
        assert!(!err.contains(super_secret()), "{err}");
    }

    // …the api starts (a database that is down at start-up is waited out) and is not ready,
    // its readiness check saying why in the same line.
    let mut s = settings(&dir, Some(db.url("?ssl-mode=VERIFY_CA")));
    s.database_ca_file = Some(pki.other_ca.clone());
    let search = chat_search::open(&s, Access::Reader).await.unwrap();
    let backend = wiring::open(&s, Schema::Check, search).await.unwrap();
    let readiness = backend.service.health().await.database.unwrap_err();
    assert_one_line(&readiness);
    assert!(
        readiness.contains("certificate did not verify"),
        "{readiness}"
    );

    // REQUIRED encrypts without checking the certificate (as documented): it connects.
    let mut s = settings(&dir, Some(db.url("?ssl-mode=REQUIRED")));
    s.database_ca_file = Some(pki.other_ca.clone());
    assert!(ssl_version(&mysql_url(&s)).await.starts_with("TLS"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn super_secret() -> &'static str {
    chat_core::testkit::tls::TLS_PASSWORD
}

#[tokio::test]
async fn rediss_with_the_ca_file_numbers_and_queues_through_the_real_adapters() {
    let pki = TestPki::generate();
    let redis = PrivateTlsRedis::start(&pki).await;
    let dir = temp_dir();
    let mut s = settings(&dir, None);
    s.redis_url = Some(redis.url());
    s.redis_ca_file = Some(pki.ca.clone());
    s.validate().unwrap();
    let url = s.redis().unwrap();
    let timeout = Duration::from_secs(2);
    chat_core::redis_conn::verify_certificate(&url, timeout)
        .await
        .unwrap();

    let numbers = RedisNumbers::connect(&url, "tls:", timeout).await.unwrap();
    let chats = Sequence::Chats { application_id: 7 };
    assert_eq!(numbers.next_above(chats, 0).await.unwrap(), 1);
    assert_eq!(numbers.next(chats).await.unwrap(), Some(2));

    let queue = RedisQueue::connect(&url, "tls:", timeout).await.unwrap();
    queue.ensure().await.unwrap();
    queue.publish(&["over tls".to_owned()]).await.unwrap();
    let got = queue
        .receive(
            Group::Counter,
            "c1",
            10,
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>(),
        ["over tls"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_redis_certificate_from_another_ca_fails_start_up_in_one_line() {
    let pki = TestPki::generate();
    let redis = PrivateTlsRedis::start(&pki).await;
    let dir = temp_dir();
    let server = format!("127.0.0.1:{}", redis.port);
    for (ca, hint) in [
        (Some(pki.other_ca.clone()), "CHAT_REDIS_CA_FILE"),
        (None, "the public roots"),
    ] {
        let mut s = settings(&dir, None);
        s.redis_url = Some(redis.url());
        s.redis_ca_file = ca;
        s.validate().unwrap();
        let search = chat_search::open(&s, Access::Writer).await.unwrap();
        let err = match wiring::open(&s, Schema::Migrate, search).await {
            Err(err @ Error::Config(_)) => err.to_string(),
            Err(other) => panic!("not a configuration error: {other}"),
            Ok(_) => panic!("started against an untrusted certificate"),
        };
        assert_one_line(&err);
        for part in [
            "REDIS_URL",
            server.as_str(),
            "certificate",
            "UnknownIssuer",
            hint,
        ] {
            assert!(err.contains(part), "{part} missing: {err}");
        }
    }

    // A connection made anyway (adapters connect lazily) fails each call in one line too.
    let mut s = settings(&dir, None);
    s.redis_url = Some(redis.url());
    s.redis_ca_file = Some(pki.other_ca.clone());
    let numbers = RedisNumbers::connect(&s.redis().unwrap(), "tls:", Duration::from_secs(2))
        .await
        .unwrap();
    let err = numbers.ping().await.unwrap_err();
    assert!(matches!(err, Error::RedisUnavailable(_)), "{err:?}");
    let err = err.to_string();
    assert_one_line(&err);
    assert!(err.contains("certificate did not verify"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_reaches_mysql_and_redis_over_tls() {
    let pki = TestPki::generate();
    let db = PrivateMariaDb::start(&pki).await;
    let redis = PrivateTlsRedis::start(&pki).await;
    let tls = |s: &mut Settings| {
        s.database_url = Some(db.url("?ssl-mode=VERIFY_IDENTITY"));
        s.database_ca_file = Some(pki.ca.clone());
        s.redis_url = Some(redis.url());
        s.redis_ca_file = Some(pki.ca.clone());
    };
    let dir = temp_dir();
    let mut s = settings(&dir, None);
    tls(&mut s);
    s.validate().unwrap();
    wiring::migrate(&s, false).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // The harness's embedded mode, switched to the private servers by settings alone.
    let app = TestApp::start_with(Mode::Embedded, tls).await;
    let token = app.new_application("over tls").await;
    let chat = app.new_chat(&token).await;
    assert_eq!(chat, 1);
    let message = app.new_message(&token, chat, "hello over TLS").await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.text);
    assert_eq!(message.json["number"], 1);
}
