//! Connections against the real binary: one that sends nothing, or trickles its headers, is
//! closed after llama-server's keep-alive timeout (5 s) while other requests go on, and with
//! `--max-connections` a connection beyond the cap waits until another closes, then is served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

/// How long the server gives a connection to send a request's headers.
const IDLE: Duration = Duration::from_secs(5);

/// Reads until the server closes `stream`, writing `trickle` (when given) every half second
/// meanwhile; returns how long that took, or `None` if it was still open after `limit`.
fn time_to_close(
    mut stream: TcpStream,
    trickle: Option<&[u8]>,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        if let Some(bytes) = trickle
            && stream.write_all(bytes).is_err()
        {
            return Some(start.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(n) => panic!(
                "an answer to unfinished headers: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn idle_and_trickling_connections_are_closed_while_requests_go_on() {
    let server = Server::start(&[]);
    let connect = || TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut waiting = Vec::new();
    for i in 0..40 {
        let mut stream = connect();
        let trickle: Option<&'static [u8]> = if i % 2 == 0 {
            None
        } else {
            stream
                .write_all(b"POST /completion HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            Some(b"X-Slow: 1\r\n")
        };
        waiting.push(std::thread::spawn(move || {
            time_to_close(stream, trickle, IDLE * 4)
        }));
    }
    // Meanwhile the server answers as usual.
    let start = Instant::now();
    let mut answered = 0;
    while start.elapsed() < IDLE + Duration::from_secs(2) {
        let (status, health) = server.get("/health");
        assert_eq!((status, &health["status"]), (200, &"ok".into()), "{health}");
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answered > 10, "{answered} answers");
    for (i, thread) in waiting.into_iter().enumerate() {
        let closed = thread.join().unwrap();
        let kind = if i % 2 == 0 { "idle" } else { "trickling" };
        let closed = closed.unwrap_or_else(|| panic!("{kind} connection {i} still open"));
        assert!(
            closed >= IDLE - Duration::from_secs(1) && closed <= IDLE * 3,
            "{kind} connection {i} closed after {closed:?}"
        );
    }
}

#[test]
fn connections_beyond_the_cap_wait_for_one_to_close() {
    let server = Server::start(&["--max-connections", "4", "-np", "4"]);
    let read_some = |stream: &mut TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("{e}"),
        }
    };
    // Four connections busy with endless streams hold the four places.
    let body =
        r#"{"prompt":"Once upon a time","n_predict":100000,"ignore_eos":true,"stream":true}"#;
    let mut streams: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(
                stream,
                "POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            stream
        })
        .collect();
    for stream in &mut streams {
        let first = read_some(stream, IDLE * 4).expect("the stream starts");
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    }
    // A fifth connects (the listen backlog takes it) but is not served while they run ...
    let mut fifth = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_some(&mut fifth, Duration::from_secs(2)),
        None,
        "served beyond the cap"
    );
    // ... and is, once one of them closes.
    drop(streams.pop());
    let reply = read_some(&mut fifth, IDLE * 2).expect("served once a place is free");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
