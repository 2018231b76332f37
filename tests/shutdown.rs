//! Stopping the server while it generates: SIGTERM or Ctrl-C lets requests in flight run for
//! `--shutdown-timeout` seconds, then ends them with a last event the client can read, and the
//! process exits 0; a second signal exits at once. (A stream with no `n_predict` limit once
//! kept the server alive forever, deaf to further signals.)

mod common;

use common::Server;
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn a_stop_signal_ends_streams_after_the_grace_period_and_exits_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&["-np", "2", "--shutdown-timeout", "2"]);
        let mut stream = server.start_long_stream();
        let sent = Instant::now();
        server.signal(signal);
        let mut rest = String::new();
        let _ = stream.read_to_string(&mut rest);
        let ended = sent.elapsed();
        assert!(
            ended >= Duration::from_millis(1500) && ended < Duration::from_secs(10),
            "the stream ran on for the grace period, then ended: {ended:?}"
        );
        let last = rest
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .next_back()
            .unwrap_or_default()
            .to_owned();
        assert!(
            last.contains("shutting down"),
            "the last event says why: {last}"
        );
        let status = server.wait_exit(Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "signal {signal}");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&["-np", "2", "--shutdown-timeout", "600"]);
    let _stream = server.start_long_stream();
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
}
