//! Listening sockets: one per worker on the same address, with `SO_REUSEPORT` so the kernel
//! spreads new connections over the workers without any shared accept lock.
//!
//! The first socket binds the configured port (0 picks a free one, for tests); the others bind the
//! port it got. `worker/accept.rs` accepts from its own socket until `WouldBlock`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections each listening socket queues (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` listening sockets on `addr`, all on the same port.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let listener = bind_one(addr)?;
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // accepted sockets inherit TCP_NODELAY on Linux: one setsockopt per listener, not per connection
    socket.set_nodelay(true)?;
    defer_accept(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `TCP_DEFER_ACCEPT`: a connection is handed to `accept` only once its first bytes arrived, so the
/// worker can read the request right after accepting it. Best effort: without it a worker simply
/// waits for the first readable event.
fn defer_accept(socket: &Socket) {
    let seconds: libc::c_int = 1;
    // SAFETY: setsockopt with a valid fd, a pointer to a live c_int and its exact size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Raises the soft limit on open files to the hard limit (as nginx's `worker_rlimit_nofile` would):
/// every client connection and every backend connection is a file descriptor. Returns the limit
/// now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_one_port() {
        let ls = bind_all("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let ls = bind_all("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let addr = ls[0].local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        // TCP_DEFER_ACCEPT: the connection is accepted once bytes arrive
        std::io::Write::write_all(&mut client, b"x").unwrap();
        ls[0].set_nonblocking(false).unwrap();
        let (accepted, _) = ls[0].accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
