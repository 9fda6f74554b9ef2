//! Tests of `handover.rs`: sockets across a real unix socket, the successor rule, systemd's
//! notification.

use super::*;

/// A directory removed (with everything in it) when dropped, even by a test that fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `up.sock` in a fresh directory of its own (this user's alone), and that directory: keep it
/// until the sockets there are gone.
fn temp_path(name: &str) -> (TempDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ferrule-handover-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join("up.sock");
    (TempDir(dir), path)
}

#[test]
fn nobody_on_the_path_is_no_takeover() {
    let (_dir, path) = temp_path("none");
    assert!(take_over(&path).unwrap().is_none());
    // a stale socket file: bound, then its listener gone
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(take_over(&path).unwrap().is_none());
}

#[test]
fn sockets_go_across_with_their_roles_and_queued_connections() {
    let (_dir, path) = temp_path("across");
    let proxies = crate::listener::bind_all("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = proxies[0].local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut offered = vec![Listening::dup(Role::Admin, &admin).unwrap()];
    for l in &proxies {
        offered.push(Listening::dup(Role::Proxy, l).unwrap());
    }
    let offer: Offer = Arc::new(Mutex::new(offered));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut server = UpgradeServer::start(&path, offer, move |pid| {
        let _ = tx.send(pid);
    })
    .unwrap();
    // a connection queued before the handover, accepted after it
    let mut queued = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut queued, b"x").unwrap();
    drop(proxies);
    drop(admin);

    let mut t = take_over(&path).unwrap().expect("a takeover");
    assert_eq!(t.old_pid(), Some(std::process::id()));
    assert_eq!(t.take(Role::Admin, admin_addr).len(), 1);
    let groups = t
        .proxy_listeners("127.0.0.1:0".parse().unwrap(), 3)
        .unwrap();
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    assert!(groups
        .iter()
        .flatten()
        .all(|l| l.local_addr().unwrap() == addr));
    assert!(t.ready());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        std::process::id()
    );
    let accepted = groups
        .iter()
        .flatten()
        .take(2)
        .find_map(|l| l.accept().ok());
    assert!(accepted.is_some(), "the queued connection was not accepted");
    server.stop();
    // a successor owns the path now: it is left in place
    assert!(path.exists());
}

#[test]
fn fewer_workers_than_sockets_take_several() {
    let (_dir, path) = temp_path("fewer");
    let proxies = crate::listener::bind_all("127.0.0.1:0".parse().unwrap(), 3).unwrap();
    let offered = proxies
        .iter()
        .map(|l| Listening::dup(Role::Proxy, l).unwrap())
        .collect();
    let _server = UpgradeServer::start(&path, Arc::new(Mutex::new(offered)), |_| {}).unwrap();
    let mut t = take_over(&path).unwrap().expect("a takeover");
    let groups = t
        .proxy_listeners("127.0.0.1:0".parse().unwrap(), 2)
        .unwrap();
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
}

#[test]
fn a_draining_process_hands_over_what_it_still_has() {
    let (_dir, path) = temp_path("busy");
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let offer = vec![Listening::dup(Role::Admin, &admin).unwrap()];
    let _server = UpgradeServer::start(&path, Arc::new(Mutex::new(offer)), |_| {}).unwrap();
    let mut t = take_over(&path).unwrap().expect("a takeover");
    assert_eq!(t.take(Role::Admin, admin_addr).len(), 1);
    // no proxy listener came: they are bound afresh
    let groups = t
        .proxy_listeners("127.0.0.1:0".parse().unwrap(), 2)
        .unwrap();
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
}

#[test]
fn a_process_for_another_address_takes_nothing_and_the_old_one_goes_on() {
    let (_dir, path) = temp_path("other");
    let proxies = crate::listener::bind_all("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let addr = proxies[0].local_addr().unwrap();
    let offer = vec![Listening::dup(Role::Proxy, &proxies[0]).unwrap()];
    let (tx, rx) = std::sync::mpsc::channel();
    let _server = UpgradeServer::start(&path, Arc::new(Mutex::new(offer)), move |pid| {
        let _ = tx.send(pid);
    })
    .unwrap();
    let other = SocketAddr::new("127.0.0.2".parse().unwrap(), addr.port());
    let e = Takeover::connect(Some(&path), other)
        .err()
        .expect("not a successor");
    assert!(e.contains(&format!("serving {addr}, not {other}")), "{e}");
    // the old process was not told to drain: it still hands its sockets to a true successor
    // (had it been, it would serve no more upgrades and this takeover would find nothing)
    let mut t = Takeover::connect(Some(&path), addr).unwrap();
    assert_eq!(t.take(Role::Proxy, addr).len(), 1);
    assert!(t.ready());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        std::process::id()
    );
    assert!(rx.try_recv().is_err(), "told to drain twice");
}

#[test]
fn a_process_that_takes_no_socket_does_not_make_the_old_one_drain() {
    let (_dir, path) = temp_path("none-taken");
    // a draining process offers its admin socket only
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let offer = vec![Listening::dup(Role::Admin, &admin).unwrap()];
    let (tx, rx) = std::sync::mpsc::channel();
    let _server = UpgradeServer::start(&path, Arc::new(Mutex::new(offer)), move |pid| {
        let _ = tx.send(pid);
    })
    .unwrap();
    let proxy: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut t = Takeover::connect(Some(&path), proxy).unwrap();
    let elsewhere = SocketAddr::new(admin_addr.ip(), admin_addr.port().wrapping_add(1));
    assert!(t.take(Role::Admin, elsewhere).is_empty());
    assert!(!t.ready(), "told to drain with none of its sockets taken");
    let mut t = Takeover::connect(Some(&path), proxy).unwrap();
    assert_eq!(t.take(Role::Admin, admin_addr).len(), 1);
    assert!(t.ready());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        std::process::id()
    );
    assert!(rx.try_recv().is_err(), "told to drain twice");
}

#[test]
fn systemd_hears_ready() {
    let (_dir, path) = temp_path("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    assert_eq!(send_notify(path.as_os_str(), b"READY=1").unwrap(), 7);
    let mut buf = [0u8; 16];
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let (_dir, path) = temp_path("file");
    std::fs::write(&path, b"data").unwrap();
    assert!(UpgradeServer::start(&path, Arc::new(Mutex::new(Vec::new())), |_| {}).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}
