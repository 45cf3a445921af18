//! An in-process server around the embedded simulator, and raw clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_backend::Backend;
use vtpm_client::{get_capability, parse_pcr_read, parse_tpm_properties, pcr_read};
use vtpm_server::engine::{BufferLimits, Reopen, Tpm, TpmOptions};
use vtpm_server::store::Store;
use vtpm_server::{Channels, Endpoint, Server, ServerError, StopHandle, StopReason};
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_CAP_TPM_PROPERTIES};

pub struct Running {
    pub dir: tempfile::TempDir,
    pub stop: StopHandle,
    pub thread: Option<JoinHandle<Result<StopReason, ServerError>>>,
    pub mssim: Option<(Endpoint, Endpoint)>,
    pub ctrl: Option<PathBuf>,
    pub data: Option<PathBuf>,
}

impl Running {
    pub fn join(mut self) -> Result<StopReason, ServerError> {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.stop();
            let _ = t.join();
        }
    }
}

pub fn sim(size: usize) -> Box<dyn Backend> {
    Box::new(
        SimBackend::new(SimConfig {
            buffer_size: size,
            rng_seed: Some([3; 32]),
            ..SimConfig::default()
        })
        .unwrap(),
    )
}

pub fn reopen() -> (Reopen, BufferLimits) {
    (
        Box::new(|size| Ok(sim(size))),
        BufferLimits {
            min: 4096,
            max: 8192,
        },
    )
}

pub struct Options {
    pub powered: bool,
    pub startup: bool,
    pub mssim: bool,
    pub swtpm: bool,
    pub store: Option<PathBuf>,
    /// Encrypt the store with this key.
    pub key: Option<[u8; 32]>,
    /// The backend served; the sim with an 8192-byte buffer when `None`.
    pub backend: Option<Box<dyn Backend>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            powered: true,
            startup: true,
            mssim: true,
            swtpm: true,
            store: None,
            key: None,
            backend: None,
        }
    }
}

pub fn start(options: Options) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = options.store.as_deref().map(|d| {
        Store::open(d, options.key.map(vtpm_server::store::StateKey::from_bytes)).unwrap()
    });
    let mut tpm = Tpm::new(
        options.backend.unwrap_or_else(|| sim(8192)),
        Some(reopen()),
        store,
        TpmOptions {
            startup_clear: options.startup,
        },
    )
    .unwrap();
    if options.powered {
        tpm.power_on_at_start().unwrap();
    }
    let mut channels = Channels::default();
    let mut mssim = None;
    if options.mssim {
        channels
            .bind_mssim(&"tcp:127.0.0.1:0".parse().unwrap(), None)
            .unwrap();
        let (c, p) = channels.mssim.as_ref().unwrap();
        mssim = Some((c.endpoint(), p.endpoint()));
    }
    let (mut ctrl, mut data) = (None, None);
    if options.swtpm {
        let c = dir.path().join("ctrl");
        let d = dir.path().join("data");
        channels
            .bind_swtpm(
                Some(&Endpoint::Unix(c.clone())),
                Some(&Endpoint::Unix(d.clone())),
            )
            .unwrap();
        ctrl = Some(c);
        data = Some(d);
    }
    let server = Server::new(tpm, channels).unwrap();
    let stop = server.stop_handle();
    let thread = Some(std::thread::spawn(move || server.run()));
    Running {
        dir,
        stop,
        thread,
        mssim,
        ctrl,
        data,
    }
}

pub fn tcp(endpoint: &Endpoint) -> TcpStream {
    let Endpoint::Tcp(addr) = endpoint else {
        panic!("not tcp")
    };
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

pub fn unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One control request on a fresh connection; reads `reply_len` bytes,
/// then checks that nothing more follows.
pub fn ctrl(path: &Path, request: &[u8], reply_len: usize) -> Vec<u8> {
    let mut s = unix(path);
    s.write_all(request).unwrap();
    let mut reply = vec![0u8; reply_len];
    s.read_exact(&mut reply).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut more = [0u8; 1];
    match s.read(&mut more) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("more reply than {reply_len} bytes for {request:02x?}"),
    }
    reply
}

pub fn req(command: u32, body: &[u8]) -> Vec<u8> {
    let mut r = command.to_be_bytes().to_vec();
    r.extend_from_slice(body);
    r
}

/// A bare TPM command over a data connection; returns the response.
pub fn transact<S: Read + Write>(s: &mut S, command: &[u8]) -> Vec<u8> {
    s.write_all(command).unwrap();
    let mut header = [0u8; 10];
    s.read_exact(&mut header).unwrap();
    let size = u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize;
    let mut rsp = header.to_vec();
    rsp.resize(size, 0);
    s.read_exact(&mut rsp[10..]).unwrap();
    rsp
}

pub fn rc(response: &[u8]) -> u32 {
    u32::from_be_bytes(response[6..10].try_into().unwrap())
}

pub fn pcr0<S: Read + Write>(s: &mut S) -> Vec<u8> {
    let rsp = transact(s, &pcr_read(TPM_ALG_SHA256, &[0]));
    assert_eq!(rc(&rsp), 0);
    parse_pcr_read(&rsp).unwrap().digests[0].clone()
}

pub fn max_command_size<S: Read + Write>(s: &mut S) -> u32 {
    let rsp = transact(
        s,
        &get_capability(
            TPM_CAP_TPM_PROPERTIES,
            vtpm_wire::consts::TPM_PT_MAX_COMMAND_SIZE,
            1,
        ),
    );
    parse_tpm_properties(&rsp).unwrap()[0].1
}

/// An mssim SEND_COMMAND; returns the response after checking the trailing 0.
pub fn mssim_send(s: &mut TcpStream, locality: u8, command: &[u8]) -> Vec<u8> {
    let mut r = 8u32.to_be_bytes().to_vec();
    r.push(locality);
    r.extend_from_slice(&(command.len() as u32).to_be_bytes());
    r.extend_from_slice(command);
    s.write_all(&r).unwrap();
    mssim_read_response(s)
}

pub fn mssim_read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut rsp = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut rsp).unwrap();
    let mut trailer = [0u8; 4];
    s.read_exact(&mut trailer).unwrap();
    assert_eq!(trailer, [0; 4], "the response ends with u32 0");
    rsp
}

pub fn signal(s: &mut TcpStream, code: u32) -> u32 {
    s.write_all(&code.to_be_bytes()).unwrap();
    let mut r = [0u8; 4];
    s.read_exact(&mut r).unwrap();
    u32::from_be_bytes(r)
}

/// The connection was closed by the server (end of stream, or a reset).
pub fn closed<S: Read>(s: &mut S) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}
