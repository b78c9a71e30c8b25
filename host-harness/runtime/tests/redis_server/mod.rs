//! A real Debian redis-server for tests: on a free loopback port, in a private temporary
//! directory, with an ACL user that has a password, stopped and removed when dropped.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const USER: &str = "oauth2-worker";
pub const PASSWORD: &str = "redis-acl-password-7f3a";

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Serving TLS only, with `cert.pem` and `key.pem` from this folder.
    tls: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a server; fails the test when redis-server is not installed.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A server that speaks TLS only, with the certificate and key in `certs` (`cert.pem`,
    /// `key.pem`); `url` is then `rediss://`.
    pub fn start_tls(certs: &std::path::Path) -> Self {
        Self::start_with(Some(certs.to_owned()))
    }

    fn start_with(tls: Option<PathBuf>) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oauth2-redis-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            dir,
            tls,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.arg("--port").arg(self.port.to_string()),
            Some(certs) => command
                .args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(certs.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(certs.join("key.pem"))
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
            // Every write reaches the disk before it is acknowledged, so a restart loses none.
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--user", "default", "off"])
            .args([
                "--user",
                USER,
                "on",
                &format!(">{PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): it is Debian's redis-server, which \
                     tests/interop/setup.sh installs"
                )
            });
        self.child = Some(child);
        let url = self.url().replacen("rediss://", "redis://", 1);
        let started = Instant::now();
        loop {
            if self.tls.is_some() {
                // No client here trusts the test's CA: the port taking connections will do.
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "redis-server did not listen on port {} within 10 s",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let ready = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            if ready.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer on port {} within 10 s: {ready:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://USER:PASSWORD@127.0.0.1:PORT/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{USER}:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// A direct connection, for looking at what the store wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every key and its value, as Redis holds them, sorted by key.
    pub fn dump(&self) -> Vec<(String, String)> {
        let mut con = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        let mut dump: Vec<(String, String)> = keys
            .into_iter()
            .map(|key| {
                let value: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
                (key, value)
            })
            .collect();
        dump.sort();
        dump
    }

    /// Stops the server as an operator would (SIGTERM), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
