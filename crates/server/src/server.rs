//! The server: one thread per listening channel, one client per channel at
//! a time, one [`Tpm`] shared by all channels.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use vtpm_backend::{BackendError, Cancel};

use crate::engine::Tpm;
use crate::net::{Conn, Endpoint, Listener};
use crate::{mssim, swtpm, ServerError};

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// swtpm's SHUTDOWN control command.
    ControlShutdown,
    /// mssim's TPM_STOP.
    MssimStop,
    /// [`StopHandle::stop`] (the CLI calls it on SIGTERM and SIGINT).
    Requested,
}

/// The channels to serve.
#[derive(Debug, Default)]
pub struct Channels {
    /// mssim command port and platform port.
    pub mssim: Option<(Listener, Listener)>,
    /// swtpm control channel.
    pub ctrl: Option<Listener>,
    /// swtpm data channel (without it, clients hand one over with SET_DATAFD).
    pub server: Option<Listener>,
}

impl Channels {
    /// Binds the mssim ports: `command` and `platform` (default: the
    /// command port + 1).
    pub fn bind_mssim(
        &mut self,
        command: &Endpoint,
        platform: Option<&Endpoint>,
    ) -> Result<(), ServerError> {
        let (command, platform) = bind_pair(command, platform)?;
        self.mssim = Some((command, platform));
        Ok(())
    }

    /// Binds the swtpm channels: `ctrl` (default, for a TCP `server`: its
    /// port + 1, where tpm2-tss's swtpm TCTI looks) and `server`.
    pub fn bind_swtpm(
        &mut self,
        ctrl: Option<&Endpoint>,
        server: Option<&Endpoint>,
    ) -> Result<(), ServerError> {
        match (ctrl, server) {
            (Some(ctrl), None) => self.ctrl = Some(Listener::bind(ctrl)?),
            (Some(ctrl), Some(server)) => {
                self.server = Some(Listener::bind(server)?);
                self.ctrl = Some(Listener::bind(ctrl)?);
            }
            (None, Some(server @ Endpoint::Tcp(_))) => {
                let (server, ctrl) = bind_pair(server, None)?;
                self.server = Some(server);
                self.ctrl = Some(ctrl);
            }
            (None, Some(Endpoint::Unix(_))) => {
                return Err(ServerError::Endpoint(
                    "a Unix data channel (--server unix:PATH) needs --ctrl".into(),
                ))
            }
            (None, None) => {}
        }
        Ok(())
    }
}

/// Binds `first` and `second` (default: `first`'s port + 1). Port 0 picks
/// a free pair of consecutive ports.
fn bind_pair(
    first: &Endpoint,
    second: Option<&Endpoint>,
) -> Result<(Listener, Listener), ServerError> {
    if let Some(second) = second {
        return Ok((Listener::bind(first)?, Listener::bind(second)?));
    }
    let Endpoint::Tcp(addr) = first else {
        return Err(ServerError::Endpoint(format!(
            "{first}: a port pair needs tcp:HOST:PORT"
        )));
    };
    if !addr.ends_with(":0") {
        let a = Listener::bind(first)?;
        let b = Listener::bind(&first.next_port()?)?;
        return Ok((a, b));
    }
    for _ in 0..64 {
        let a = Listener::bind(first)?;
        if let Ok(b) = Listener::bind(&a.endpoint().next_port()?) {
            return Ok((a, b));
        }
    }
    Err(ServerError::Endpoint(format!(
        "{first}: found no free pair of consecutive ports"
    )))
}

pub(crate) struct Shared {
    tpm: Mutex<Tpm>,
    stop: Mutex<Option<StopReason>>,
    stopped: Condvar,
    stopping: AtomicBool,
    /// Clones of the open connections, shut down when the server stops so
    /// their threads end.
    conns: Mutex<Vec<(u64, Conn)>>,
    next_conn: AtomicU64,
    /// A data channel handed over with SET_DATAFD is being served.
    pub(crate) datafd_busy: AtomicBool,
    /// The backend's cancel handle, reachable without the TPM lock.
    canceller: Mutex<Option<Arc<dyn Cancel>>>,
    /// Whether a command is executing, and whether a cancel was sent for
    /// it: a cancel reaches the running command or nobody.
    cancel_gate: Mutex<CancelGate>,
}

/// See [`Shared::cancel_running`].
#[derive(Default)]
struct CancelGate {
    executing: bool,
    sent: bool,
}

/// Marks the end of a command on the cancel gate when dropped.
struct EndOfCommand<'a>(&'a Shared);

impl Drop for EndOfCommand<'_> {
    fn drop(&mut self) {
        let mut gate = relock(&self.0.cancel_gate);
        gate.executing = false;
        if std::mem::take(&mut gate.sent) {
            if let Some(canceller) = self.0.canceller() {
                canceller.withdraw();
            }
        }
    }
}

/// What became of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// Sent to the backend for the command executing.
    Sent,
    /// No command was executing: nothing to cancel, and the request is
    /// dropped rather than left for the next command.
    Idle,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(tpm: Tpm) -> Self {
        let canceller = tpm.canceller();
        Self {
            tpm: Mutex::new(tpm),
            stop: Mutex::new(None),
            stopped: Condvar::new(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            datafd_busy: AtomicBool::new(false),
            canceller: Mutex::new(canceller),
            cancel_gate: Mutex::new(CancelGate::default()),
        }
    }

    /// Executes `command` on `tpm` (the caller holds the TPM lock), open to
    /// [`Shared::cancel_running`] while it runs. A cancel that arrived too
    /// late for the command to see is withdrawn afterwards, so it cannot
    /// land on the next command.
    pub(crate) fn execute_cancellable(
        &self,
        tpm: &mut Tpm,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) {
        relock(&self.cancel_gate).executing = true;
        // Closes the gate however the command ends, a panic in the backend
        // included (the connection's catch_unwind then ends the request).
        let _end = EndOfCommand(self);
        tpm.execute(locality, command, response);
    }

    /// Cancels the command executing now, if any (without the TPM lock:
    /// the command to cancel holds it). Holding the gate while the backend
    /// is asked keeps the command from finishing in between unseen.
    pub(crate) fn cancel_running(&self) -> Result<CancelOutcome, BackendError> {
        let mut gate = relock(&self.cancel_gate);
        if !gate.executing {
            return Ok(CancelOutcome::Idle);
        }
        if let Some(canceller) = self.canceller() {
            canceller.cancel()?;
            gate.sent = true;
        }
        Ok(CancelOutcome::Sent)
    }

    pub(crate) fn tpm(&self) -> MutexGuard<'_, Tpm> {
        relock(&self.tpm)
    }

    pub(crate) fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        relock(&self.canceller).clone()
    }

    pub(crate) fn set_canceller(&self, canceller: Option<Arc<dyn Cancel>>) {
        *relock(&self.canceller) = canceller;
    }

    pub(crate) fn request_stop(&self, reason: StopReason) {
        let mut stop = relock(&self.stop);
        if stop.is_none() {
            *stop = Some(reason);
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.stopped.notify_all();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Runs `serve` on `conn`, registered for shutdown, with a panic in
    /// the backend turned into a closed connection.
    pub(crate) fn serve_conn(self: &Arc<Self>, conn: Conn, serve: fn(Conn, &Arc<Shared>)) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = conn.try_clone() {
            relock(&self.conns).push((id, clone));
        }
        if self.is_stopping() {
            conn.shutdown();
        }
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| serve(conn, self)));
        if ran.is_err() {
            tracing::error!("a connection handler panicked; the connection is closed");
        }
        relock(&self.conns).retain(|(i, _)| *i != id);
    }

    /// Serves `conn` on a thread of its own (a SET_DATAFD data channel).
    pub(crate) fn spawn_conn(self: &Arc<Self>, conn: Conn, serve: fn(Conn, &Arc<Shared>)) {
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("vtpm-serve-datafd".into())
            .spawn(move || shared.serve_conn(conn, serve));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the data channel thread");
            self.datafd_busy.store(false, Ordering::SeqCst);
        }
    }
}

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Asks the server to store its state and return from [`Server::run`].
    pub fn stop(&self) {
        self.0.request_stop(StopReason::Requested);
    }
}

/// A TPM served over the configured channels.
pub struct Server {
    shared: Arc<Shared>,
    channels: Channels,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `tpm` on `channels` (at least one).
    pub fn new(tpm: Tpm, channels: Channels) -> Result<Self, ServerError> {
        if channels.mssim.is_none() && channels.ctrl.is_none() && channels.server.is_none() {
            return Err(ServerError::NoChannel);
        }
        if channels.server.is_some() && channels.ctrl.is_none() {
            return Err(ServerError::Endpoint(
                "a swtpm data channel (--server) needs a control channel (--ctrl)".into(),
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared::new(tpm)),
            channels,
        })
    }

    /// A handle that stops the server.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.shared))
    }

    /// The channels, for their bound addresses.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// Serves until a client stops the server (SHUTDOWN, TPM_STOP) or the
    /// stop handle is used; then writes the state to the store, closes
    /// every connection and returns why it stopped.
    pub fn run(self) -> Result<StopReason, ServerError> {
        let Self { shared, channels } = self;
        let Channels {
            mssim,
            ctrl,
            server,
        } = channels;
        let mut threads = Vec::new();
        let mut spawn = |listener: Listener, serve: fn(Conn, &Arc<Shared>)| {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("vtpm-serve-accept".into())
                .spawn(move || accept_loop(&listener, &shared, serve))
                .map(|h| threads.push(h))
                .map_err(|e| ServerError::io("starting a listener thread", e))
        };
        if let Some((command, platform)) = mssim {
            spawn(command, mssim::serve_command)?;
            spawn(platform, mssim::serve_platform)?;
        }
        if let Some(ctrl) = ctrl {
            spawn(ctrl, swtpm::serve_ctrl)?;
        }
        if let Some(server) = server {
            spawn(server, swtpm::serve_data)?;
        }
        let reason = {
            let mut stop = relock(&shared.stop);
            loop {
                if let Some(reason) = *stop {
                    break reason;
                }
                stop = shared.stopped.wait(stop).unwrap_or_else(|e| e.into_inner());
            }
        };
        // Close every connection and let the listener threads end first,
        // so no command runs after the state is written.
        for (_, conn) in relock(&shared.conns).iter() {
            conn.shutdown();
        }
        for t in threads {
            let _ = t.join();
        }
        shared.tpm().persist()?;
        tracing::info!(?reason, "server stopped");
        Ok(reason)
    }
}

const ACCEPT_POLL: Duration = Duration::from_millis(100);

fn accept_loop(listener: &Listener, shared: &Arc<Shared>, serve: fn(Conn, &Arc<Shared>)) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(error = %e, "cannot make the listener non-blocking");
        return;
    }
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: ACCEPT_POLL.as_nanos() as _,
    };
    while !shared.is_stopping() {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "poll on a listener failed");
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        }
        match listener.accept() {
            Ok(conn) => {
                if conn.set_nonblocking(false).is_err()
                    || conn
                        .set_write_timeout(Some(crate::net::REQUEST_TIMEOUT))
                        .is_err()
                {
                    continue;
                }
                tracing::debug!(endpoint = %listener.endpoint(), "client connected");
                // Served inline: the next client waits in the backlog until
                // this one disconnects, as with swtpm.
                shared.serve_conn(conn, serve);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
}
