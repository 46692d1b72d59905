//! An external OCI runtime (runc, crun, or any binary with their command line) driving the same
//! bundle the shim would give libcontainer. The shim stays the container's owner: it is the
//! runtime's parent for `create` and `exec --detach`, and as child subreaper it adopts and reaps
//! the processes the runtime leaves behind, exactly as with libcontainer.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::Pid;
use serde_json::Value;

use crate::error::{ErrorKind, Failure};

/// One container under an external runtime.
#[derive(Debug, Clone)]
pub struct External {
    pub bin: PathBuf,
    /// The runtime's state root (`--root`).
    pub root: PathBuf,
    pub id: String,
    /// The runtime's JSON log (`--log`), where its errors are read from.
    pub log: PathBuf,
}

/// The stdio a created or exec'd process gets: a console socket for a TTY, or three pipe ends.
pub enum Stdio3<'a> {
    Console(&'a Path),
    Pipes(OwnedFd, OwnedFd, OwnedFd),
}

impl External {
    /// The runtime's command line; with `log`, its messages go to its JSON log (for commands whose
    /// stderr is the container's), else to a pipe. `delete` runs without: by then the daemon may
    /// have removed the state directory the log is in.
    fn command(&self, log: bool) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        if log {
            c.arg("--log").arg(&self.log).arg("--log-format").arg("json");
        }
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        c
    }

    fn name(&self) -> String {
        self.bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Run `c` to completion; a failure carries the runtime's own last error, and the kind read
    /// from it.
    fn run(&self, mut c: Command, what: &str) -> Result<(), Failure> {
        let _ = fs::remove_file(&self.log);
        let out = c.output().map_err(|e| Failure::io(self.bin.display(), e))?;
        let status = out.status;
        if status.success() {
            return Ok(());
        }
        let said = fs::read_to_string(&self.log)
            .ok()
            .and_then(|s| last_error(&s))
            .or_else(|| Some(String::from_utf8_lossy(&out.stderr).trim().to_string()).filter(|s| !s.is_empty()));
        Err(Failure::runtime(format!(
            "{} {what} failed ({status}){}",
            self.name(),
            said.map(|m| format!(": {m}")).unwrap_or_default()
        )))
    }

    fn with_stdio(c: &mut Command, io: Stdio3) {
        match io {
            Stdio3::Console(p) => {
                c.arg("--console-socket").arg(p);
            }
            Stdio3::Pipes(i, o, e) => {
                c.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e));
            }
        }
    }

    fn read_pid(&self, f: &Path) -> Result<Pid, Failure> {
        let s = fs::read_to_string(f).map_err(|e| Failure::io(format_args!("{} left no pid file {}", self.name(), f.display()), e))?;
        let pid = s
            .trim()
            .parse()
            .map_err(|_| Failure::new(ErrorKind::Other, format!("{}: bad pid file {}: {s:?}", self.name(), f.display())))?;
        let _ = fs::remove_file(f);
        Ok(Pid::from_raw(pid))
    }

    /// `create`: the container's init waits for `start`; returns its pid.
    pub fn create(&self, bundle: &Path, pid_file: &Path, io: Stdio3) -> Result<Pid, Failure> {
        let mut c = self.command(true);
        c.arg("create").arg("--bundle").arg(bundle).arg("--pid-file").arg(pid_file);
        Self::with_stdio(&mut c, io);
        c.arg(&self.id);
        self.run(c, "create")?;
        self.read_pid(pid_file)
    }

    /// `exec --detach` of the process described by `process_json`; returns its pid.
    pub fn exec(&self, process_json: &Path, pid_file: &Path, io: Stdio3) -> Result<Pid, Failure> {
        let mut c = self.command(true);
        c.arg("exec")
            .arg("--detach")
            .arg("--process")
            .arg(process_json)
            .arg("--pid-file")
            .arg(pid_file);
        Self::with_stdio(&mut c, io);
        c.arg(&self.id);
        self.run(c, "exec")?;
        self.read_pid(pid_file)
    }

    /// `start`, `pause`, `resume`.
    pub fn simple(&self, verb: &str) -> Result<(), Failure> {
        let mut c = self.command(true);
        c.arg(verb).arg(&self.id);
        self.run(c, verb)
    }

    /// `delete --force`: the runtime's state (and its cgroups) go.
    pub fn delete(&self) -> Result<(), Failure> {
        let mut c = self.command(false);
        c.args(["delete", "--force"]).arg(&self.id);
        self.run(c, "delete")
    }
}

/// The message of the last error-level line of a runtime's JSON log (runc's and crun's format:
/// `{"level":"error","msg":"..."}`).
fn last_error(log: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        matches!(v.get("level")?.as_str()?, "error" | "fatal").then(|| v.get("msg")?.as_str().map(|m| m.trim().to_string()))?
    })
}

/// Find `name` on `PATH` unless it is a path already.
pub fn resolve(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(|d| Path::new(d).join(name)))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_error_of_a_json_log() {
        let log = r#"{"level":"warning","msg":"w","time":"t"}
{"level":"error","msg":"container_linux.go: starting container process caused: exec: \"nope\": executable file not found in $PATH\n","time":"t"}
{"level":"info","msg":"bye","time":"t"}
"#;
        assert_eq!(
            last_error(log).unwrap(),
            "container_linux.go: starting container process caused: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(last_error("not json\n"), None);
    }

    #[test]
    fn resolves_on_path() {
        assert!(resolve(Path::new("sh")).is_some());
        assert_eq!(resolve(Path::new("/nonexistent/runc")), None);
        assert_eq!(resolve(Path::new("no-such-runtime-binary")), None);
    }
}
