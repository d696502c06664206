//! The OpenAI-compatible client against a fault-injecting server on 127.0.0.1: retries,
//! timeouts, Retry-After, the cache, and errors that name the record.
#![allow(clippy::unwrap_used)]

mod common {
    pub(crate) mod fault_server;
}

use std::time::Duration;

use common::fault_server::FaultServer;
use kailin_answer::{Error, OpenAiClient, answer_all};
use kailin_core::{Context, CptRecord, SftRecord};

fn rec(id: &str, case: &str) -> CptRecord {
    CptRecord {
        id: id.into(),
        question: format!("Question {id}? [case:{case}]"),
        context: Context { doc_ids: vec!["d".into()], text: "Some context.".into() },
        ..Default::default()
    }
}

fn client(server: &FaultServer, cache: Option<&std::path::Path>, retries: usize) -> OpenAiClient {
    let mut b = OpenAiClient::builder(server.base_url(), "test-model").api_key("sk-test-secret").configure(|o| {
        o.served.timeout = Duration::from_secs(1);
        o.served.min_delay = Duration::from_millis(10);
        o.served.max_delay = Duration::from_millis(40);
        o.served.max_retries = retries;
        o.served.concurrency = 3;
    });
    if let Some(dir) = cache {
        b = b.cache(dir);
    }
    b.build().unwrap()
}

fn run(client: &OpenAiClient, records: &[CptRecord]) -> (Vec<SftRecord>, kailin_answer::Result<()>) {
    let mut out = Vec::new();
    let result = answer_all(
        client,
        records,
        1,
        4,
        |r| {
            out.push(r);
            Ok(())
        },
        |_| (),
    );
    (out, result)
}

#[test]
fn transient_failures_are_retried_and_each_record_is_answered_once_in_order() {
    let server = FaultServer::start();
    let cache = tempfile::tempdir().unwrap();
    let cases = ["ok", "e500x2", "r429", "malformed", "hang", "drop", "nousage"];
    let records: Vec<_> = cases.iter().enumerate().map(|(i, c)| rec(&i.to_string(), c)).collect();
    let c = client(&server, Some(cache.path()), 4);
    let (out, result) = run(&c, &records);
    result.unwrap();
    let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6"]);
    for r in &out {
        assert!(r.answer.starts_with("answer to"), "{}", r.answer);
        assert!(r.answer.contains(&format!("Question {}?", r.id)), "{}", r.answer);
        assert_eq!(r.provenance.model.as_deref(), Some("test-model"));
    }
    let stats = c.stats();
    // 2 (500s) + 1 (429) + 1 (malformed) + 1 (timeout) + 1 (dropped) retries.
    assert_eq!(stats.retries, 6, "{stats:?}");
    assert_eq!(stats.requests, 13, "{stats:?}");
    assert_eq!(server.requests(), 13);
    assert_eq!((stats.answered, stats.without_usage), (7, 1));
    assert_eq!(stats.prompt_tokens, 6 * 11);
    // Retry-After: 1 was honoured (the backoff alone would wait ≤ 40 ms).
    let t = server.arrivals("[case:r429]");
    assert!(t[1] - t[0] >= Duration::from_millis(990), "{:?}", t[1] - t[0]);

    // A rerun on the same cache sends nothing and writes the same records.
    let again = client(&server, Some(cache.path()), 4);
    let (out2, result) = run(&again, &records);
    result.unwrap();
    assert_eq!(out2, out);
    assert_eq!(server.requests(), 13);
    assert_eq!(again.stats().cached, 7);
}

#[test]
fn a_server_that_keeps_failing_is_given_up_on_naming_the_record_and_finished_answers_stay() {
    let server = FaultServer::start();
    let cache = tempfile::tempdir().unwrap();
    let records = vec![rec("a", "ok"), rec("b", "always500"), rec("c", "ok")];
    let c = client(&server, Some(cache.path()), 2);
    let (out, result) = run(&c, &records);
    assert_eq!(out.len(), 1);
    match result.unwrap_err() {
        Error::Record { record, line, source } => {
            assert_eq!((record.as_str(), line), ("b", 2));
            assert!(matches!(*source, Error::Lm(kailin_lm::Error::GaveUp { attempts: 3, .. })), "{source}");
        }
        e => panic!("{e}"),
    }
    assert_eq!(server.arrivals("[case:always500]").len(), 3);
    // "c" was answered too and is in the cache: a rerun of it costs no request.
    let before = server.requests();
    let (out, result) = run(&client(&server, Some(cache.path()), 2), &records[2..]);
    result.unwrap();
    assert_eq!((out.len(), server.requests()), (1, before));
}

#[test]
fn a_wrong_key_fails_fast_without_showing_the_key() {
    let server = FaultServer::start();
    let (_, result) = run(&client(&server, None, 5), &[rec("k", "auth")]);
    let err = result.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("401") && msg.contains("invalid api key"), "{msg}");
    assert!(!msg.contains("sk-test-secret"), "{msg}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn an_endpoint_that_is_not_openai_compatible_is_named() {
    let server = FaultServer::start();
    let (_, result) = run(&client(&server, None, 5), &[rec("n", "notfound")]);
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("not an OpenAI-compatible") && msg.contains("/v1/chat/completions"), "{msg}");
    assert_eq!(server.requests(), 1);
    // Nothing listening at all: a network error, retried, then given up on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = OpenAiClient::builder(format!("http://127.0.0.1:{port}/v1"), "m")
        .configure(|o| {
            o.served.max_retries = 1;
            o.served.min_delay = Duration::from_millis(5);
        })
        .build()
        .unwrap();
    let (_, result) = run(&c, &[rec("x", "ok")]);
    assert!(result.unwrap_err().to_string().contains("gave up after 2 attempts"));
}
