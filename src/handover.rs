//! Zero-downtime restart: a new ferrule takes the listening sockets of the running one over a
//! unix socket (`upgrade_socket`), as HAProxy's `-x` and Sozu do, so no listening socket ever
//! closes and the connections queued in the kernel's backlog are accepted by the new process.
//!
//! Why hand the sockets over rather than only bind a second `SO_REUSEPORT` group: when the old
//! process closes a reuse-port socket, the connections queued on that very socket (accepted by the
//! kernel, not yet by ferrule) are reset; and the admin port is not reuse-port at all. Passing the
//! descriptors (`SCM_RIGHTS`) keeps the same sockets, with their queues, alive in the new process.
//!
//! The exchange, one message per `SOCK_SEQPACKET` packet (message boundaries kept, and each
//! descriptor travels with its own description):
//! ```text
//!   new → old   HELLO <pid>
//!   old → new   SOCKET <role> <addr>       one per listening socket, its descriptor attached
//!   old → new   END <pid>
//!   new → old   READY                      once the new process listens on them (or it closes:
//!                                          the old one then goes on serving as before)
//!   new → old   DECLINE                    instead: it took none of them (another address)
//! ```
//! On `READY` the old process drains exactly as on SIGTERM ([`Event::Upgraded`] in `main.rs`); it
//! does not unlink the path, which the new process has bound again by then for the next upgrade.
//! Only a process that took at least one socket says `READY`. One whose proxy address matches
//! none of the old one's proxy listeners is no successor (another ferrule given the same path):
//! it takes nothing, says `DECLINE`, and refuses to start ([`Takeover::connect`]), so the old one
//! neither drains nor loses its path.
//!
//! Both ends check the peer's uid (`SO_PEERCRED`) against their own; the socket is mode 0600, in
//! a directory that nobody else can write ([`secure_path`]: a directory or socket that someone
//! else created, or a symlink, is refused, never followed). A path where no process answers
//! (missing, or a stale socket file) means "no old process": the new one binds its sockets
//! itself. Nothing here is on a worker thread.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, SockAddr, Socket, Type};

mod path;
pub use path::secure_path;

/// Longest wait for one message of the exchange (the peer is a local process).
const MESSAGE_WAIT: Duration = Duration::from_secs(5);
/// How long the old process waits for `READY` after handing its sockets over.
const READY_WAIT: Duration = Duration::from_secs(60);
/// How often the serving thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(250);
/// Largest message (a role and an address fit many times over).
const MAX_MESSAGE: usize = 512;
/// Most sockets one handover carries (`workers` is at most 1024, plus admin and redirect).
const MAX_SOCKETS: usize = 1100;

/// What a listening socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A worker's proxy listener (one per worker, `SO_REUSEPORT`).
    Proxy,
    /// The admin API.
    Admin,
    /// The https redirect listener (`ssl.redirect_http_port`).
    Redirect,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::Admin => "admin",
            Role::Redirect => "redirect",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "proxy" => Some(Role::Proxy),
            "admin" => Some(Role::Admin),
            "redirect" => Some(Role::Redirect),
            _ => None,
        }
    }
}

/// One listening socket, as handed over.
#[derive(Debug)]
pub struct Listening {
    pub role: Role,
    pub addr: SocketAddr,
    pub socket: std::net::TcpListener,
}

impl Listening {
    /// A second descriptor of `socket` (the running server keeps the first), to hand over later.
    pub fn dup(role: Role, socket: &std::net::TcpListener) -> io::Result<Listening> {
        Ok(Listening {
            role,
            addr: socket.local_addr()?,
            socket: socket.try_clone()?,
        })
    }
}

/// The sockets a running process can hand over. Proxy listeners leave it when the drain starts
/// (so that, without a successor, closing them refuses new connections at once); the admin and
/// redirect sockets stay until their servers stop.
pub type Offer = Arc<Mutex<Vec<Listening>>>;

/// `path` as a `sockaddr_un` (at most 107 bytes).
fn unix_addr(path: &Path) -> io::Result<SockAddr> {
    SockAddr::unix(path)
}

fn seqpacket() -> io::Result<Socket> {
    Socket::new(Domain::UNIX, Type::SEQPACKET, None)
}

// ----------------------------------------------------------------------------- new process

/// What a new process got from the old one: its sockets, and the connection to tell it `READY`.
#[derive(Default)]
pub struct Takeover {
    sockets: Vec<Listening>,
    /// The old process's pid and the connection to it.
    old: Option<(u32, Socket)>,
    /// How many of the received sockets were taken: with none, the old process is not told to
    /// drain.
    taken: usize,
}

/// Whether a socket on `got` serves `want` (a port or address 0 in `want` matches any port).
fn serves(want: SocketAddr, got: SocketAddr) -> bool {
    (want.port() == 0 || want.port() == got.port()) && want.ip() == got.ip()
}

impl Takeover {
    /// No old process: every socket is bound afresh.
    pub fn none() -> Takeover {
        Takeover::default()
    }

    /// Asks the process on `path` (if any) for its sockets, as the successor of one whose proxy
    /// listens on `proxy`. A path where nobody answers means there is no old process, and a
    /// failed exchange is logged: either way the new process binds its own sockets (if the old
    /// one still holds a port, that start then fails with the bind error, and the old process
    /// goes on serving). The error: the process there serves another proxy address, so this one
    /// is no successor of it; it is told so (`DECLINE`) and goes on serving.
    pub fn connect(path: Option<&Path>, proxy: SocketAddr) -> Result<Takeover, String> {
        let Some(path) = path else {
            return Ok(Takeover::none());
        };
        match take_over(path) {
            Ok(Some(mut t)) => {
                let pid = t.old_pid().unwrap_or(0);
                let mut theirs = t.sockets.iter().filter(|l| l.role == Role::Proxy);
                let first = theirs.clone().next().map(|l| l.addr);
                if let Some(addr) = first.filter(|_| !theirs.any(|l| serves(proxy, l.addr))) {
                    t.decline();
                    return Err(format!(
                        "pid {pid} answers on it, serving {addr}, not {proxy}: it was left \
                         serving; give this ferrule an upgrade_socket of its own (or stop pid \
                         {pid} first)"
                    ));
                }
                log::info!(
                    "took over {} listening sockets from pid {pid} (upgrade socket {})",
                    t.sockets.len(),
                    path.display()
                );
                Ok(t)
            }
            Ok(None) => Ok(Takeover::none()),
            Err(e) => {
                log::warn!(
                    "upgrade socket {}: no handover ({e}); binding the ports afresh",
                    path.display()
                );
                Ok(Takeover::none())
            }
        }
    }

    /// Tells the old process that this one takes none of its sockets: it goes on serving.
    fn decline(&mut self) {
        self.sockets.clear();
        if let Some((pid, conn)) = self.old.take() {
            if let Err(e) = send_message(&conn, b"DECLINE", None) {
                log::debug!("could not tell pid {pid} that its sockets are not taken: {e}");
            }
        }
    }

    /// The old process's pid, when there is one.
    pub fn old_pid(&self) -> Option<u32> {
        self.old.as_ref().map(|(pid, _)| *pid)
    }

    /// Takes the received sockets of `role` whose address is `want` (a port or address 0 in
    /// `want` matches any). Those of another address are left (and closed with the takeover).
    pub fn take(&mut self, role: Role, want: SocketAddr) -> Vec<std::net::TcpListener> {
        let matches = |l: &Listening| l.role == role && serves(want, l.addr);
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(matches);
        self.sockets = kept;
        self.taken += taken.len();
        if taken.is_empty() && self.sockets.iter().any(|l| l.role == role) {
            log::warn!(
                "the old process's {} socket is not on {want} (the config changed?): binding afresh",
                role.name()
            );
        }
        taken.into_iter().map(|l| l.socket).collect()
    }

    /// The proxy listeners for `workers` workers on `addr`: the received ones first (spread
    /// round-robin, so a worker may take several when fewer workers are wanted than sockets were
    /// received), then new `SO_REUSEPORT` ones on the same port for workers left without one.
    pub fn proxy_listeners(
        &mut self,
        addr: SocketAddr,
        workers: usize,
    ) -> io::Result<Vec<Vec<std::net::TcpListener>>> {
        let workers = workers.max(1);
        let received = self.take(Role::Proxy, addr);
        if received.is_empty() {
            return Ok(crate::listener::bind_all(addr, workers)?
                .into_iter()
                .map(|l| vec![l])
                .collect());
        }
        let port_addr = received[0].local_addr()?;
        let mut groups: Vec<Vec<std::net::TcpListener>> =
            (0..workers).map(|_| Vec::new()).collect();
        for (i, l) in received.into_iter().enumerate() {
            groups[i % workers].push(l);
        }
        for group in groups.iter_mut().filter(|g| g.is_empty()) {
            group.extend(crate::listener::bind_all(port_addr, 1)?);
        }
        Ok(groups)
    }

    /// The single socket of `role` on `addr` if one was received, else a new one bound there.
    pub fn single(
        &mut self,
        role: Role,
        addr: SocketAddr,
        bind: impl FnOnce(SocketAddr) -> io::Result<std::net::TcpListener>,
    ) -> io::Result<std::net::TcpListener> {
        let mut got = self.take(role, addr);
        match got.pop() {
            Some(l) => Ok(l),
            None => bind(addr),
        }
    }

    /// Tells the old process that this one listens: it starts draining. Returns whether it was
    /// told (false: there was none, this one took none of its sockets, or the message could not
    /// be sent).
    pub fn ready(&mut self) -> bool {
        if self.taken == 0 {
            // nothing of the old process's is served here: it must not stop serving
            self.decline();
            return false;
        }
        // the sockets not taken (another address) are closed here: the old process keeps its own
        self.sockets.clear();
        let Some((pid, conn)) = self.old.take() else {
            return false;
        };
        match send_message(&conn, b"READY", None) {
            Ok(()) => {
                log::info!("told the old process (pid {pid}) to drain and exit");
                true
            }
            Err(e) => {
                log::warn!("could not tell the old process (pid {pid}) to drain: {e}");
                false
            }
        }
    }
}

/// The new side of the exchange; `Ok(None)`: no process answers on `path`.
fn take_over(path: &Path) -> io::Result<Option<Takeover>> {
    let conn = seqpacket()?;
    match conn.connect(&unix_addr(path)?) {
        Ok(()) => {}
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.kind() == io::ErrorKind::ConnectionRefused =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    conn.set_read_timeout(Some(MESSAGE_WAIT))?;
    conn.set_write_timeout(Some(MESSAGE_WAIT))?;
    let (uid, _) = peer_cred(&conn)?;
    if uid != own_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the process answering runs as uid {uid}, not ours"),
        ));
    }
    send_message(
        &conn,
        format!("HELLO {}", std::process::id()).as_bytes(),
        None,
    )?;
    let mut sockets = Vec::new();
    let mut buf = [0u8; MAX_MESSAGE];
    for _ in 0..=MAX_SOCKETS {
        let (n, fd) = recv_message(&conn, &mut buf)?;
        let text = std::str::from_utf8(&buf[..n]).map_err(|_| bad("a message is not UTF-8"))?;
        let mut words = text.split_ascii_whitespace();
        match (words.next(), fd) {
            (Some("SOCKET"), Some(fd)) => sockets.push(describe_socket(&mut words, fd)?),
            (Some("END"), None) => {
                let pid = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                return Ok(Some(Takeover {
                    sockets,
                    old: Some((pid, conn)),
                    taken: 0,
                }));
            }
            _ => return Err(bad(&format!("unexpected message {text:?}"))),
        }
    }
    Err(bad("too many sockets"))
}

/// Checks a received descriptor against its description: a TCP listening socket on that address.
fn describe_socket<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    fd: OwnedFd,
) -> io::Result<Listening> {
    let role = words
        .next()
        .and_then(Role::parse)
        .ok_or_else(|| bad("a socket without a known role"))?;
    let addr: SocketAddr = words
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad("a socket without an address"))?;
    let socket = Socket::from(fd);
    let actual = socket.local_addr()?.as_socket();
    if socket.r#type()? != Type::STREAM || !socket.is_listener()? || actual != Some(addr) {
        return Err(bad(&format!(
            "the {} socket is not a TCP listener on {addr}",
            role.name()
        )));
    }
    socket.set_nonblocking(true)?;
    Ok(Listening {
        role,
        addr,
        socket: socket.into(),
    })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

// ----------------------------------------------------------------------------- old process

/// The running process's end: listens on the upgrade socket and hands its sockets to a new
/// process that asks. Stopped (and its path unlinked, if still its own) on drop.
pub struct UpgradeServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    /// The path's inode once bound: unlinked at exit only if it is still ours.
    inode: (u64, u64),
    /// A successor took over: the path is its now.
    handed_over: Arc<AtomicBool>,
}

impl UpgradeServer {
    /// Binds `path` (mode 0600), replacing an old process's socket or a stale one (but never
    /// another kind of file), and serves upgrades on a thread. `on_ready(pid)` runs when a
    /// successor said it listens.
    pub fn start(
        path: &Path,
        offer: Offer,
        on_ready: impl Fn(u32) + Send + 'static,
    ) -> io::Result<UpgradeServer> {
        secure_path(path).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            // an old process's socket (already handed over) or a stale one
            std::fs::remove_file(path)?;
        }
        let listener = seqpacket()?;
        listener.bind(&unix_addr(path)?)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.listen(8)?;
        listener.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let handed_over = Arc::new(AtomicBool::new(false));
        let (flag, done) = (Arc::clone(&stop), Arc::clone(&handed_over));
        let thread = std::thread::Builder::new()
            .name("ferrule-upgrade".into())
            .spawn(move || serve(&listener, &offer, &flag, &done, &on_ready))?;
        Ok(UpgradeServer {
            stop,
            thread: Some(thread),
            path: path.to_owned(),
            inode: (meta.dev(), meta.ino()),
            handed_over,
        })
    }

    /// Stops serving upgrades; unlinks the path unless a successor now owns it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.handed_over.load(Ordering::Relaxed) {
            return;
        }
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for UpgradeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    listener: &Socket,
    offer: &Offer,
    stop: &AtomicBool,
    handed_over: &AtomicBool,
    on_ready: &dyn Fn(u32),
) {
    while !stop.load(Ordering::Relaxed) && !handed_over.load(Ordering::Relaxed) {
        if !wait_readable(listener.as_raw_fd(), TICK) {
            continue;
        }
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("upgrade socket: accept failed: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        };
        match hand_over(&conn, offer, stop) {
            Ok(Some(pid)) => {
                handed_over.store(true, Ordering::Relaxed);
                on_ready(pid);
            }
            Ok(None) => {}
            Err(e) => log::warn!("upgrade socket: handover failed, still serving: {e}"),
        }
    }
}

/// One handover; `Ok(Some(pid))` when the new process said `READY`.
fn hand_over(conn: &Socket, offer: &Offer, stop: &AtomicBool) -> io::Result<Option<u32>> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(MESSAGE_WAIT))?;
    conn.set_write_timeout(Some(MESSAGE_WAIT))?;
    let (uid, peer_pid) = peer_cred(conn)?;
    if uid != own_uid() {
        log::warn!("upgrade socket: refused pid {peer_pid}, which runs as uid {uid}, not ours");
        return Ok(None);
    }
    let mut buf = [0u8; MAX_MESSAGE];
    let (n, fd) = recv_message(conn, &mut buf)?;
    drop(fd);
    if !buf[..n].starts_with(b"HELLO") {
        return Err(bad("the first message is not HELLO"));
    }
    {
        // while draining, only the admin and redirect sockets are left (the proxy listeners are
        // closed): the new process takes those and binds the proxy port afresh
        let offer = offer.lock();
        for l in offer.iter() {
            let text = format!("SOCKET {} {}", l.role.name(), l.addr);
            send_message(conn, text.as_bytes(), Some(l.socket.as_raw_fd()))?;
        }
    }
    send_message(conn, format!("END {}", std::process::id()).as_bytes(), None)?;
    log::info!("upgrade socket: handed the listening sockets to pid {peer_pid}; waiting for it");
    // READY, or the connection closing (the new process failed): bounded by READY_WAIT
    conn.set_read_timeout(Some(TICK))?;
    let deadline = Instant::now() + READY_WAIT;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match recv_message(conn, &mut buf) {
            Ok((n, _)) if &buf[..n] == b"READY" => return Ok(Some(peer_pid.max(0) as u32)),
            Ok((n, _)) if &buf[..n] == b"DECLINE" => {
                log::info!(
                    "upgrade socket: pid {peer_pid} took none of the listening sockets (it serves \
                     other addresses): still serving"
                );
                return Ok(None);
            }
            Ok((0, _)) => return Err(bad("the new process went away before it listened")),
            Ok(_) => return Err(bad("unexpected message instead of READY")),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
    Err(bad("the new process did not say it listens in time"))
}

// ----------------------------------------------------------------------------- systemd

/// Tells systemd this process is ready (`Type=notify` units): it listens, and an old process
/// has been told to drain. So `systemctl start ferrule@b && systemctl stop ferrule@a` stops `a`
/// only once `b` has its sockets. Does nothing outside systemd (no `NOTIFY_SOCKET`).
pub fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&path, b"READY=1") {
        log::warn!("cannot tell systemd that ferrule is ready: {e}");
    }
}

fn send_notify(path: &std::ffi::OsStr, message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    match path.as_bytes().strip_prefix(b"@") {
        // an abstract socket name
        Some(name) => socket.send_to_addr(message, &UnixAddr::from_abstract_name(name)?),
        None => socket.send_to(message, path),
    }
}

// ----------------------------------------------------------------------------- system calls

fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The uid and pid of the process at the other end of a unix socket.
fn peer_cred(socket: &Socket) -> io::Result<(u32, i32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt on a valid fd, writing at most `len` bytes into a live ucred whose size
    // `len` holds.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.pid))
}

/// Waits up to `limit` for `fd` to be readable.
fn wait_readable(fd: RawFd, limit: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll on one live pollfd, the count matching.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0
}

/// Room for the control message of one descriptor, as u64s (so it is aligned for `cmsghdr`).
const CONTROL_WORDS: usize = 8;

/// Sends one packet, with `fd` attached when given.
fn send_message(socket: &Socket, data: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is a valid empty one; every pointer set below points at locals
    // (`iov`, `control`) that outlive the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let fd_len = std::mem::size_of::<RawFd>() as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
        if space > std::mem::size_of_val(&control) {
            return Err(bad("control buffer too small"));
        }
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough for one cmsghdr
        // and one fd (checked above), so CMSG_FIRSTHDR is non-null and CMSG_DATA is in bounds;
        // the fd is written unaligned, as CMSG_DATA need not be aligned for an int.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(bad("no room for the control message"));
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
    }
    for _ in 0..100 {
        // SAFETY: sendmsg on a valid fd with the msghdr built above (its buffers alive).
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return if n as usize == data.len() {
                Ok(())
            } else {
                Err(bad("short send"))
            };
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(timed_out(e));
        }
    }
    Err(io::Error::from(io::ErrorKind::Interrupted))
}

/// Receives one packet into `buf`: its length (0: the peer closed) and the descriptor attached,
/// if any (extra descriptors, which the protocol never sends, are closed).
fn recv_message(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    for _ in 0..100 {
        // SAFETY: as in send_message: a zeroed msghdr whose pointers are set to live locals.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: recvmsg on a valid fd into `buf` and `control`, both as long as declared.
        // MSG_CMSG_CLOEXEC: received descriptors are not inherited by children.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(timed_out(e));
        }
        let mut fds = Vec::new();
        // SAFETY: the kernel filled `msg_controllen` bytes of `control` with cmsghdrs; the CMSG
        // macros walk them within that length. Each SCM_RIGHTS payload is an array of fds now
        // open in this process, read unaligned and owned from here on (so each is closed once).
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let header = data as usize - cmsg as usize;
                    let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                        / std::mem::size_of::<RawFd>();
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            return Err(bad("a message was truncated"));
        }
        if fds.len() > 1 {
            return Err(bad("more than one descriptor in a message"));
        }
        return Ok((n as usize, fds.pop()));
    }
    Err(io::Error::from(io::ErrorKind::Interrupted))
}

/// A socket timeout (`EAGAIN` on a blocking socket with `SO_RCVTIMEO`) as `TimedOut`.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::from(io::ErrorKind::TimedOut)
    } else {
        e
    }
}

#[cfg(test)]
mod tests;
