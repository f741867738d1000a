//! Child processes in their own process groups, stopped with their whole
//! group when their guard drops; free ports; waiting for a listener.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};

/// How long a SIGTERMed group may take to end before it is SIGKILLed.
pub const GRACE: Duration = Duration::from_secs(1);

/// How often waits look again.
const POLL: Duration = Duration::from_millis(20);

/// A loopback port nothing listens on right now.
///
/// # Panics
///
/// No port can be bound (see [`try_free_port`] for an error instead).
pub fn free_port() -> u16 {
    try_free_port().expect("bind a free port")
}

/// A loopback port nothing listens on right now, or why there is none.
///
/// # Errors
///
/// No port can be bound on 127.0.0.1.
pub fn try_free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot find a free port: {e}")))?;
    Ok(listener.local_addr()?.port())
}

/// How a [`ProcessGroup`] is stopped when it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDrop {
    /// SIGTERM, then SIGKILL after [`GRACE`].
    Terminate,
    /// SIGKILL at once.
    Kill,
}

/// A running child that leads its own process group, stopped together with
/// everything it forked (e.g. nginx's workers) when the guard drops: SIGTERM
/// to the group, then SIGKILL after [`GRACE`] if it lingers, or SIGKILL at
/// once after [`ProcessGroup::kill_on_drop`].
///
/// In its own group, a Ctrl-C in the terminal (SIGINT to the foreground
/// group) reaches only the caller, which stops its children itself; the
/// flip side is that a caller that dies without unwinding (SIGKILL, or a
/// test harness killing the test's group) leaves them running.
#[derive(Debug)]
pub struct ProcessGroup {
    name: String,
    child: Child,
    group: Pid,
    /// Set once the leader is reaped: from then on its pid may name another
    /// process, so the group is never signalled again.
    status: Option<ExitStatus>,
    on_drop: OnDrop,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group, with its
    /// standard input from `/dev/null`. `name` is what messages call it.
    ///
    /// # Errors
    ///
    /// The program cannot be started (e.g. it is not installed); the error
    /// keeps the original kind (`NotFound`).
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> io::Result<Self> {
        let name = name.into();
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        let group = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
        let Some(group) = group else {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("{name} has no process id")));
        };
        Ok(Self {
            name,
            child,
            group,
            status: None,
            on_drop: OnDrop::Terminate,
        })
    }

    /// Makes dropping the guard SIGKILL the group at once, without the
    /// SIGTERM first: for processes with nothing to finish cleanly.
    #[must_use]
    pub fn kill_on_drop(mut self) -> Self {
        self.on_drop = OnDrop::Kill;
        self
    }

    /// What messages call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader's process id (which is also the group's id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its standard output, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Its standard error, if it was piped and not taken yet.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Whether the leader has ended (by itself or by a signal). It is not
    /// reaped, so the group can still be signalled safely.
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let peek = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        matches!(waitid(WaitId::Pid(self.group), peek), Ok(Some(_)))
    }

    /// SIGKILL to the whole group, then waits for the leader to end.
    ///
    /// # Errors
    ///
    /// Waiting for the leader failed.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.signal(Signal::KILL);
        self.reap()
    }

    /// SIGTERM (and SIGCONT, should it be frozen) to the whole group; once
    /// the leader has ended, or after `grace`, SIGKILL to whatever is left
    /// of the group; then waits for the leader.
    ///
    /// # Errors
    ///
    /// Waiting for the leader failed.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal(Signal::TERM);
        self.signal(Signal::CONT);
        let deadline = Instant::now() + grace;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The leader is not reaped yet, so this reaches only its group.
        self.signal(Signal::KILL);
        self.reap()
    }

    /// Freezes the whole group (SIGSTOP): connections stay open, nothing is
    /// answered.
    ///
    /// # Errors
    ///
    /// The signal could not be sent (the group is gone).
    pub fn pause(&self) -> io::Result<()> {
        self.checked_signal(Signal::STOP)
    }

    /// Lets a frozen group go on (SIGCONT).
    ///
    /// # Errors
    ///
    /// The signal could not be sent (the group is gone).
    pub fn resume(&self) -> io::Result<()> {
        self.checked_signal(Signal::CONT)
    }

    /// Waits until `addr` accepts TCP connections, while the process keeps
    /// running.
    ///
    /// # Errors
    ///
    /// The process ended first, or nothing listened within `patience`.
    pub fn wait_for_listener(&mut self, addr: SocketAddr, patience: Duration) -> io::Result<()> {
        let listening = || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        match poll(Some(self), patience, listening) {
            Poll::Ready => Ok(()),
            Poll::Exited => Err(io::Error::other(format!(
                "{} ended before listening on {addr}",
                self.name
            ))),
            Poll::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not listen on {addr} within {patience:?}", self.name),
            )),
        }
    }

    fn checked_signal(&self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Err(io::Error::other(format!("{} has ended", self.name)));
        }
        Ok(kill_process_group(self.group, signal)?)
    }

    fn signal(&self, signal: Signal) {
        // Until the leader is reaped its pid names this group and no other,
        // so the signal cannot reach an unrelated process.
        if self.status.is_none() {
            let _ = kill_process_group(self.group, signal);
        }
    }

    fn reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| io::Error::new(e.kind(), format!("waiting for {}: {e}", self.name)))?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = match self.on_drop {
            OnDrop::Terminate => self.terminate(GRACE),
            OnDrop::Kill => self.kill(),
        };
    }
}

/// How a [`poll`] ended.
pub(crate) enum Poll {
    Ready,
    Exited,
    TimedOut,
}

/// Calls `ready` every few milliseconds until it holds, `process` (if any)
/// ends, or `patience` runs out.
pub(crate) fn poll(
    mut process: Option<&mut ProcessGroup>,
    patience: Duration,
    mut ready: impl FnMut() -> bool,
) -> Poll {
    let deadline = Instant::now() + patience;
    loop {
        if ready() {
            return Poll::Ready;
        }
        if let Some(process) = process.as_deref_mut()
            && process.has_exited()
        {
            return Poll::Exited;
        }
        if Instant::now() > deadline {
            return Poll::TimedOut;
        }
        std::thread::sleep(POLL);
    }
}

/// Whether process `pid` runs (a zombie, dead but not yet reaped, does
/// not).
#[cfg(test)]
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    /// The pid a `sh` started in the background printed on its first line.
    fn grandchild(group: &mut ProcessGroup) -> u32 {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(group.take_stdout().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse().unwrap()
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn dropping_the_guard_stops_everything_the_child_forked() {
        for kill in [false, true] {
            let mut command = sh("sleep 60 & echo $!; wait");
            command.stdout(Stdio::piped());
            let mut group = ProcessGroup::spawn("sh", &mut command).unwrap();
            if kill {
                group = group.kill_on_drop();
            }
            let (leader, forked) = (group.id(), grandchild(&mut group));
            assert!(alive(leader) && alive(forked));
            let started = Instant::now();
            drop(group);
            assert!(started.elapsed() < GRACE + Duration::from_millis(500));
            poll(None, Duration::from_secs(5), || !alive(forked));
            assert!(!alive(leader) && !alive(forked), "kill_on_drop: {kill}");
        }
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let mut group = ProcessGroup::spawn("sh", &mut sh("trap '' TERM; sleep 60")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let status = group.terminate(Duration::from_millis(300)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!status.success());
        assert!(group.has_exited());
    }

    #[test]
    fn terminate_lets_a_frozen_child_end_cleanly() {
        let mut group =
            ProcessGroup::spawn("sh", &mut sh("trap 'exit 7' TERM; sleep 60 & wait")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        group.pause().unwrap();
        let status = group.terminate(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), Some(7));
        assert!(group.pause().is_err(), "an ended group is never signalled");
    }

    #[test]
    fn waiting_for_a_listener_notices_the_process_ending() {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut group = ProcessGroup::spawn("false", &mut Command::new("false")).unwrap();
        let error = group
            .wait_for_listener(addr, Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("false ended before listening on {addr}")
        );

        let listener = TcpListener::bind(addr).unwrap();
        let mut group = ProcessGroup::spawn("sleep", Command::new("sleep").arg("60")).unwrap();
        group
            .wait_for_listener(addr, Duration::from_secs(10))
            .unwrap();
        drop(listener);
        let error = group
            .wait_for_listener(addr, Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let error =
            ProcessGroup::spawn("nope", &mut Command::new("tessera-no-such-program")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error.to_string().starts_with("cannot start nope: "),
            "{error}"
        );
    }
}
