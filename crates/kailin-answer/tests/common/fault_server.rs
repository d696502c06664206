//! A fault-injecting OpenAI-compatible server for tests, on 127.0.0.1 and a free port.
//!
//! Each request's behaviour is chosen by a marker in its last message, `[case:NAME]`, and by
//! how many times that message has been seen: `ok`, `e500x2` (two 500s, then an answer),
//! `r429` (a 429 with `Retry-After: 1`, then an answer), `malformed` (a 200 that is not JSON,
//! then an answer), `hang` (no response for 3 s, then an answer), `drop` (the connection
//! closed without a response, then an answer), `always500`, `auth` (401), `notfound` (404),
//! `nousage` (an answer without `usage` and with an empty `finish_reason`), `slow` (an answer
//! after 150 ms), `echo500` (a 500 whose body echoes the request's `Authorization` header,
//! then an answer), `echo401` (a 401 echoing it), `r429long` (a 429 asking for a day's wait).
//! Answers are `answer to <message>` with the marker removed (a question agent's prompt gets a
//! question, a judge's prompt the letter `A`). A server started with
//! [`FaultServer::start_faulty`] treats a message without a marker as `e500x2`, `drop`,
//! `malformed` or `ok` by a hash of its text (transient faults on its first sight, so every
//! message is answered after retries). `GET …/models` lists `test-model`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server; stopped when dropped.
pub struct FaultServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    stop: Arc<AtomicBool>,
    listed: Arc<AtomicUsize>,
}

impl FaultServer {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server whose unmarked messages meet transient faults first.
    pub fn start_faulty() -> Self {
        Self::start_with(true)
    }

    fn start_with(faulty: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let listed = Arc::new(AtomicUsize::new(0));
        let (s, st, l) = (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&listed));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, l) = (Arc::clone(&s), Arc::clone(&l));
                        std::thread::spawn(move || {
                            let _ = handle(stream, &s, &l, faulty);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultServer { addr, seen, stop, listed }
    }

    /// The API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `GET /models` requests received.
    pub fn model_lists(&self) -> usize {
        self.listed.load(Ordering::Relaxed)
    }

    /// Chat requests received for each distinct last message.
    pub fn counts(&self) -> Vec<(String, usize)> {
        self.seen.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    /// The chat requests a faulty server needs for `message` when nothing is retried in vain:
    /// its fault's failures plus the answer.
    pub fn needed(message: &str) -> usize {
        match faulty_case(message) {
            "e500x2" => 3,
            "drop" | "malformed" => 2,
            _ => 1,
        }
    }

    /// Requests received in all.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().values().map(Vec::len).sum()
    }

    /// When each request for messages containing `needle` arrived.
    pub fn arrivals(&self, needle: &str) -> Vec<Instant> {
        let seen = self.seen.lock().unwrap();
        let mut v: Vec<Instant> =
            seen.iter().filter(|(k, _)| k.contains(needle)).flat_map(|(_, t)| t.clone()).collect();
        v.sort();
        v
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The fault a faulty server gives an unmarked message (by a hash of its text).
fn faulty_case(message: &str) -> &'static str {
    let h = message.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    ["e500x2", "drop", "malformed", "ok"][(h % 4) as usize]
}

fn handle(
    stream: TcpStream,
    seen: &Mutex<HashMap<String, Vec<Instant>>>,
    listed: &AtomicUsize,
    faulty: bool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    let mut authorization = String::new();
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("authorization") {
                authorization = v.trim().to_owned();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if request_line.starts_with("GET") && request_line.contains("/models") {
        listed.fetch_add(1, Ordering::Relaxed);
        let text = serde_json::json!({"object": "list", "data": [{"id": "test-model", "object": "model"}]}).to_string();
        let mut out = stream;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            text.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(text.as_bytes())?;
        return out.flush();
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let count = {
        let mut seen = seen.lock().unwrap();
        let times = seen.entry(message.clone()).or_default();
        times.push(Instant::now());
        times.len()
    };
    let unmarked = if faulty { faulty_case(&message) } else { "ok" };
    let case = message.split("[case:").nth(1).and_then(|r| r.split(']').next()).unwrap_or(unmarked).to_owned();
    let clean = message.replace(&format!("[case:{case}]"), "");
    // A question agent's prompt gets a question, a judge's a letter, anything else an answer.
    let content = if clean.contains("Reply with the question only") {
        format!("What does study {} report?", clean.len())
    } else if clean.contains("Answer with A or B") {
        "A".to_owned()
    } else {
        format!("answer to {}", clean.trim())
    };
    let answer = |usage: bool| {
        let mut v = serde_json::json!({
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": if usage { "stop" } else { "" }}],
        });
        if usage {
            v["usage"] = serde_json::json!({"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16});
        }
        (200, v.to_string(), None)
    };
    let error = |status: u16, msg: &str| (status, serde_json::json!({"error": {"message": msg}}).to_string(), None);
    let mut out = stream;
    let (status, text, retry_after): (u16, String, Option<&str>) = match (case.as_str(), count) {
        ("e500x2", 1 | 2) | ("always500", _) => error(500, "internal error"),
        ("r429", 1) => (429, serde_json::json!({"error": {"message": "slow down"}}).to_string(), Some("1")),
        ("malformed", 1) => (200, "{\"choices\": [".into(), None),
        ("hang", 1) => {
            std::thread::sleep(Duration::from_secs(3));
            return Ok(());
        }
        ("drop", 1) => return Ok(()),
        ("auth", _) => error(401, "invalid api key"),
        ("echo500", 1) => error(500, &format!("upstream failed for authorization: {authorization}")),
        ("echo401", _) => error(401, &format!("bad key: {authorization}")),
        ("r429long", _) => {
            (429, serde_json::json!({"error": {"message": "come back tomorrow"}}).to_string(), Some("86400"))
        }
        ("notfound", _) => (404, "<html>Not Found</html>".into(), None),
        ("nousage", _) => answer(false),
        ("slow", _) => {
            std::thread::sleep(Duration::from_millis(150));
            answer(true)
        }
        _ => answer(true),
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    if let Some(r) = retry_after {
        head.push_str(&format!("Retry-After: {r}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(text.as_bytes())?;
    out.flush()
}
