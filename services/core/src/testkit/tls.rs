//! TLS test fixtures: a throw-away PKI made with the `openssl` command at test time, and
//! private `mariadbd` / `redis-server` processes serving TLS with it (each with its own
//! directory and port, killed and removed on drop).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::mysql::MySqlConnection;

use super::unique_name;

/// A CA, a server certificate it signed (for `localhost` and `127.0.0.1`), and a second,
/// unrelated CA that must not be trusted for that server.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

impl TestPki {
    pub fn generate() -> TestPki {
        let dir = std::env::temp_dir().join(unique_name("chat_pki"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=chat-system test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_ca: dir.join("other-ca.pem"),
            dir,
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!("the TLS tests need the `openssl` command (apt-get install openssl): {err}")
        });
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The first of `candidates` that exists, or a panic saying what to install.
fn binary(candidates: &[&str], package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_absolute() {
            if path.exists() {
                return path.to_path_buf();
            }
        } else if let Some(found) = std::env::split_paths(&path_dirs)
            .map(|dir| dir.join(path))
            .find(|p| p.exists())
        {
            return found;
        }
    }
    panic!(
        "the TLS tests need {} (apt-get install {package}; scripts/ensure-services.sh installs it)",
        candidates[0]
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Waits until `ready` holds, failing with the server's log if it exits or takes too long.
async fn wait_until<F, Fut>(child: &mut Child, what: &str, log: &Path, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready().await {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start ({exited:?}); its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private MariaDB serving TLS with the PKI's server certificate, with a database `chat`
/// and a user `tls_user` (password `tls-secret`) created `REQUIRE SSL`.
pub struct PrivateMariaDb {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

pub const TLS_USER: &str = "tls_user";
pub const TLS_PASSWORD: &str = "tls-secret";

impl PrivateMariaDb {
    pub async fn start(pki: &TestPki) -> PrivateMariaDb {
        let install = binary(
            &["mariadb-install-db", "/usr/bin/mariadb-install-db"],
            "mariadb-server",
        );
        let server = binary(&["mariadbd", "/usr/sbin/mariadbd"], "mariadb-server");
        let dir = std::env::temp_dir().join(unique_name("chat_mariadb"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("temp dir");
        // mariadbd refuses to run as root unless told to; as any other user it runs as itself
        // in a directory it owns.
        let user: &[&str] = if running_as_root() {
            &["--user=root"]
        } else {
            &[]
        };
        let output = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user)
            .output()
            .expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let socket = dir.join("mysqld.sock");
        let log = dir.join("error.log");
        let mut child = Command::new(&server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--ssl-cert={}", pki.cert.display()))
            .arg(format!("--ssl-key={}", pki.key.display()))
            .arg(format!("--ssl-ca={}", pki.ca.display()))
            .args(["--innodb-buffer-pool-size=32M", "--skip-name-resolve"])
            .args(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let root = format!("mysql://root@localhost/?socket={}", socket.display());
        wait_until(&mut child, "mariadbd", &log, || async {
            MySqlConnection::connect(&root).await.is_ok()
        })
        .await;
        let mut conn = MySqlConnection::connect(&root).await.expect("root session");
        // An anonymous ''@localhost would shadow tls_user@'%' for local clients.
        let anonymous: Vec<String> =
            sqlx::query_scalar("SELECT Host FROM mysql.user WHERE User = ''")
                .fetch_all(&mut conn)
                .await
                .expect("list anonymous users");
        for host in anonymous {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP USER ''@'{host}'")))
                .execute(&mut conn)
                .await
                .expect("drop anonymous user");
        }
        for statement in [
            "CREATE DATABASE chat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".to_owned(),
            format!("CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{TLS_PASSWORD}' REQUIRE SSL"),
            format!("GRANT ALL ON chat.* TO '{TLS_USER}'@'%'"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .expect("set up the TLS user");
        }
        PrivateMariaDb { port, dir, child }
    }

    /// `mysql://tls_user:…@127.0.0.1:<port>/chat`, plus `query` (e.g. `?ssl-mode=VERIFY_CA`).
    pub fn url(&self, query: &str) -> String {
        format!(
            "mysql://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{}/chat{query}",
            self.port
        )
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis serving only TLS (no plain port) with the PKI's server certificate.
pub struct PrivateTlsRedis {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl PrivateTlsRedis {
    pub async fn start(pki: &TestPki) -> PrivateTlsRedis {
        let server = binary(&["redis-server", "/usr/bin/redis-server"], "redis-server");
        let dir = std::env::temp_dir().join(unique_name("chat_redis_tls"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = free_port();
        let log = dir.join("redis.log");
        let mut child = Command::new(&server)
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", "no", "--logfile"])
            .arg(&log)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_until(&mut child, "redis-server --tls-port", &log, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        PrivateTlsRedis { port, dir, child }
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateTlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
