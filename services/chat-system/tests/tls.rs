//! TLS settings as operators meet them through the binary: a CA file that is missing or not
//! PEM is exit code 2 naming the setting; a server whose certificate does not verify stops
//! start-up with one line naming the setting, the server and the certificate, not a panic or
//! a dump; secrets never reach the output.

use std::process::{Command, Output};

use chat_core::testkit::tls::{PrivateMariaDb, PrivateTlsRedis, TestPki};
use chat_core::testkit::unique_name;

fn bin(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-system"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "ELASTICSEARCH_URL",
        "CHAT_DATABASE_CA_FILE",
        "CHAT_REDIS_CA_FILE",
        "CHAT_ELASTICSEARCH_CA_FILE",
        "CHAT_ELASTICSEARCH_API_KEY",
        "CHAT_ELASTICSEARCH_USERNAME",
        "CHAT_ELASTICSEARCH_PASSWORD",
        "CHAT_LISTEN",
        "CHAT_ADMIN_LISTEN",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CHAT_DATA_DIR", data_dir)
        .env("CHAT_LISTEN", "127.0.0.1:0")
        .env("CHAT_ADMIN_LISTEN", "127.0.0.1:0");
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name("chat_tls_bin"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary's own last word: `chat-system: <error>`, which must be the only such line.
fn final_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let finals: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("chat-system: "))
        .collect();
    assert_eq!(finals.len(), 1, "{stderr}");
    finals[0].to_owned()
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_exit_code_2_naming_the_setting() {
    let dir = temp_dir();
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.join("missing.pem");
    for (setting, base) in [
        (
            "CHAT_DATABASE_CA_FILE",
            ("DATABASE_URL", "mysql://u:p@127.0.0.1:1/chat"),
        ),
        ("CHAT_REDIS_CA_FILE", ("REDIS_URL", "rediss://127.0.0.1:1")),
        (
            "CHAT_ELASTICSEARCH_CA_FILE",
            ("ELASTICSEARCH_URL", "https://127.0.0.1:1"),
        ),
    ] {
        for file in [&missing, &not_pem] {
            let out = bin(&dir)
                .arg("migrate")
                .env(base.0, base.1)
                .env(setting, file)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{setting}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{setting}: {stderr}");
            assert!(stderr.contains(setting), "{stderr}");
            assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        }
    }
    // A URL's own ssl-ca is checked the same way.
    let out = bin(&dir)
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!("mysql://u:p@127.0.0.1:1/chat?ssl-ca={}", missing.display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL (ssl-ca)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn migrate_against_an_untrusted_database_certificate_fails_in_one_line() {
    let pki = TestPki::generate();
    let db = PrivateMariaDb::start(&pki).await;
    let dir = temp_dir();
    let out = bin(&dir)
        .arg("migrate")
        .env("DATABASE_URL", db.url("?ssl-mode=VERIFY_CA"))
        .env("CHAT_DATABASE_CA_FILE", &pki.other_ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = final_error(&out);
    for part in ["certificate", "UnknownIssuer", "DATABASE_URL"] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains(chat_core::testkit::tls::TLS_PASSWORD));

    // The right CA: migrated over TLS.
    let out = bin(&dir)
        .arg("migrate")
        .env("DATABASE_URL", db.url(""))
        .env("CHAT_DATABASE_CA_FILE", &pki.ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn serve_against_an_untrusted_redis_certificate_fails_in_one_line() {
    let pki = TestPki::generate();
    let redis = PrivateTlsRedis::start(&pki).await;
    let dir = temp_dir();
    let out = bin(&dir)
        .arg("serve")
        .env("REDIS_URL", redis.url())
        .env("CHAT_REDIS_CA_FILE", &pki.other_ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = final_error(&out);
    let server = format!("127.0.0.1:{}", redis.port);
    for part in ["REDIS_URL", server.as_str(), "certificate", "UnknownIssuer"] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn search_credentials_are_never_printed() {
    let dir = temp_dir();
    let out = bin(&dir)
        .arg("migrate")
        .env(
            "ELASTICSEARCH_URL",
            "https://elastic:url-secret@127.0.0.1:1",
        )
        .env("CHAT_ELASTICSEARCH_USERNAME", "reader")
        .env("CHAT_ELASTICSEARCH_PASSWORD", "password-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("CHAT_ELASTICSEARCH_PASSWORD=(set, redacted)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CHAT_ELASTICSEARCH_USERNAME=reader"),
        "{stderr}"
    );
    let help = bin(&dir)
        .arg("--help")
        .env("CHAT_ELASTICSEARCH_API_KEY", "key-secret")
        .env("CHAT_ELASTICSEARCH_PASSWORD", "password-secret")
        .env("DATABASE_URL", "mysql://u:db-secret@h/chat")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("CHAT_ELASTICSEARCH_API_KEY"), "{help}");
    for secret in ["url-secret", "password-secret", "key-secret", "db-secret"] {
        assert!(
            !stderr.contains(secret) && !help.contains(secret),
            "{secret} printed"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
