//! A neighbour's fake engine: a Unix socket bound by another user (uid 65534,
//! through `setpriv`) that answers every request as Podman would enough to be
//! trusted (`_ping` OK, empty lists, `{}`), and notes every request it gets,
//! head and body. What it notes is what a local attacker would have read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The neighbour's uid and gid.
pub const NEIGHBOUR: u32 = 65534;

const LISTENER: &str = r#"
import os, socket, sys, threading
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(64)
print("LISTENING", flush=True)
def serve(c):
    data = b""
    try:
        c.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data:
            return
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                want = int(line.split(b":")[1])
                while len(body) < want:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    body += chunk
        sys.stdout.write("REQUEST %r\n" % (head + b"\r\n\r\n" + body))
        sys.stdout.flush()
        target = head.split(b" ")[1] if b" " in head else b"/"
        if b"/events" in target:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            threading.Event().wait(600)
        if b"_ping" in target:
            answer = b"OK"
        elif b"/containers/json" in target:
            answer = b"[]"
        elif b"/exists" in target:
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
            return
        elif b"/containers/create" in target:
            answer = b'{"Id":"0123456789abcdef0123456789abcdef"}'
        else:
            answer = b"{}"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
    except Exception as e:
        sys.stdout.write("ERROR %r\n" % e)
        sys.stdout.flush()
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The neighbour's listener on `path`; ends with it.
pub struct HostileEngine {
    child: Child,
    seen: Arc<Mutex<String>>,
    pub path: PathBuf,
    /// The folder the neighbour made, removed with it.
    made: Option<PathBuf>,
}

impl HostileEngine {
    /// Binds `path` as the neighbour. `path`'s folder must let the neighbour in;
    /// `make_folder`: the neighbour makes the folder first (mode 0777), as one
    /// would who took a predictable name in a shared folder before Clawdock.
    pub fn start(path: &Path, make_folder: bool) -> Self {
        let folder = path.parent().expect("folder");
        let ids = format!("{NEIGHBOUR}");
        let as_neighbour = |program: &str| {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", &ids, "--regid", &ids, "--clear-groups", program]);
            c
        };
        let made = (make_folder && !folder.exists()).then(|| folder.to_path_buf());
        if made.is_some() {
            let made = as_neighbour("/bin/mkdir")
                .args(["-m", "0777"])
                .arg(folder)
                .status()
                .expect("setpriv mkdir");
            assert!(
                made.success(),
                "the neighbour could not make {}",
                folder.display()
            );
        }
        let mut child = as_neighbour("/usr/bin/python3")
            .args(["-c", LISTENER])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv python3");
        let mut out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(String::new()));
        let noted = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                noted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let began = Instant::now();
        while !seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains("LISTENING")
        {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "the neighbour's listener never bound {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            seen,
            path: path.to_path_buf(),
            made,
        }
    }

    /// Every request it was sent, in Python's `repr` of the bytes.
    pub fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lines()
            .filter(|l| l.starts_with("REQUEST"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for HostileEngine {
    fn drop(&mut self) {
        let _gone = self.child.kill();
        let _reaped = self.child.wait();
        let _removed = std::fs::remove_file(&self.path);
        if let Some(folder) = &self.made {
            let _removed = std::fs::remove_dir(folder);
        }
    }
}
