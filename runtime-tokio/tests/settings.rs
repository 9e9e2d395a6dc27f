//! Gateway flags that change the broker's behaviour reach it, seen from a client on the wire. Runs
//! on whichever binary `KELP_BIN` names.

mod common;

use bytes::Bytes;
use common::{Client, Kelp, free_port};
use kelp_core::api::join_group::request::JoinGroupRequestProtocol;
use kelp_core::api::join_group::{JoinGroupRequest, JoinGroupResponse};
use kelp_core::api::{RequestBody, ResponseBody};
use kelp_core::error_code::ErrorCode;
use std::time::Duration;

/// A JoinGroup v9 of a new group's only member (with the MEMBER_ID_REQUIRED round trip when
/// `member` is empty); long timeouts, so that only the initial delay can hold the answer back.
fn join(c: &mut Client, member: &str) -> std::io::Result<JoinGroupResponse> {
    let body = JoinGroupRequest {
        group_id: "g".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 600_000,
        member_id: member.into(),
        protocol_type: "consumer".into(),
        protocols: vec![JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"meta"),
            ..Default::default()
        }],
        ..Default::default()
    };
    match c.call(9, RequestBody::JoinGroup(body))? {
        ResponseBody::JoinGroup(r) => Ok(r),
        other => panic!("not a JoinGroup response: {other:?}"),
    }
}

/// Starts a gateway with `--group-initial-rebalance-delay-ms delay_ms` and joins a new group as its
/// first member; the answer to the join that counts, or the read's error after `wait`.
fn first_join(delay_ms: &str, wait: Duration) -> std::io::Result<JoinGroupResponse> {
    let dir = tempfile::tempdir().unwrap();
    let kelp = Kelp::start_with(
        dir.path(),
        free_port(),
        &["--group-initial-rebalance-delay-ms", delay_ms],
    );
    let mut c = Client::connect(kelp.addr).unwrap();
    let r = join(&mut c, "").unwrap();
    assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED.0);
    c.set_read_timeout(wait).unwrap();
    join(&mut c, &r.member_id.to_string())
}

#[test]
fn the_initial_rebalance_delay_is_the_flags() {
    // Far longer than the wait: the first join stays unanswered (with the default of 3 s it would
    // be answered within the 6 s waited here).
    let e = first_join("600000", Duration::from_secs(6)).expect_err("answered during the delay");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );

    // None: answered at once, the member its group's leader.
    let r = first_join("0", Duration::from_secs(20)).expect("answered");
    assert_eq!(r.error_code, 0);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.generation_id, 1);
}

/// Each runtime shape serves: one thread (the default on small machines), a set number, and one
/// per core (the default on larger ones), so every shape is tried whatever machine runs the tests.
/// Several connections at once, so that with more threads their readers and writers run on other
/// threads than the gateway's loop.
#[test]
fn every_runtime_thread_count_serves_produce_and_fetch() {
    for threads in ["1", "3", "0"] {
        let dir = tempfile::tempdir().unwrap();
        let kelp = Kelp::start_with(dir.path(), free_port(), &["--runtime-threads", threads]);
        Client::connect(kelp.addr).unwrap().create("t");
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let addr = kelp.addr;
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr).unwrap();
                    for i in 0..25 {
                        let value = vec![format!("{p}-{i}")];
                        assert!(c.produce("t", &value).unwrap().is_some(), "{p}-{i} refused");
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let stored = Client::connect(kelp.addr).unwrap().fetch_all("t");
        let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..100).collect::<Vec<_>>(), "{threads} threads");
        for p in 0..4 {
            let mine: Vec<&str> = stored
                .iter()
                .map(|(_, v)| v.as_str())
                .filter(|v| v.starts_with(&format!("{p}-")))
                .collect();
            let want: Vec<String> = (0..25).map(|i| format!("{p}-{i}")).collect();
            assert_eq!(
                mine, want,
                "producer {p}'s records in order, {threads} threads"
            );
        }
    }
}
