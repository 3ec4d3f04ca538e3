//! A real headless Chromium, driven through the DevTools protocol over
//! `--remote-debugging-pipe`: commands are written to its fd 3 and answers
//! and events read from its fd 4, each a JSON message ending in a NUL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The Chromium binary: `$QUIRE_CHROMIUM`, else `chromium` (Debian's
/// package), `chromium-browser` or `google-chrome` on the PATH; none when
/// there is none.
pub fn chromium() -> Option<String> {
    if let Some(path) = std::env::var_os("QUIRE_CHROMIUM") {
        return Some(path.to_string_lossy().into_owned());
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$0\"", name])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(name.to_string());
        }
    }
    None
}

/// [`chromium`], or `None` when there is none: the test is then skipped,
/// which says so, and fails under CI=true (`quire_testkit::require`).
pub fn required_chromium() -> Option<String> {
    let found = chromium();
    quire_testkit::require(
        "Chromium (chromium, chromium-browser, google-chrome or $QUIRE_CHROMIUM)",
        "apt-get install chromium",
        found.is_some(),
    )
    .then_some(found)
    .flatten()
}

pub struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start a headless Chromium (`chromium`, as [`chromium`] found it)
    /// with a fresh profile.
    pub fn launch(chromium: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // sh hands our pipes to Chromium as its fds 3 (commands) and 4
        // (answers).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>/dev/null")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let commands = child.stdin.take().unwrap();
        let answers = child.stdout.take().unwrap();
        let (send, messages) = channel();
        std::thread::spawn(move || {
            let mut answers = BufReader::new(answers);
            loop {
                let mut message = Vec::new();
                match answers.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && send.send(value).is_err()
                {
                    return;
                }
            }
        });
        Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: None,
            _profile: profile,
        }
    }

    /// Send a command (to the attached page, if any) and wait for its
    /// answer, skipping events; panic on an error answer or after 30 s.
    fn call(&mut self, method: &str, params: Value, on_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if on_page {
            message["sessionId"] = json!(self.session.clone().expect("a page is open"));
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        self.commands.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(answer) if answer["id"] == id => {
                    assert!(answer["error"].is_null(), "{method}: {answer}");
                    return answer["result"].clone();
                }
                Ok(_event) => {}
                Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium went away ({method})"),
            }
        }
    }

    /// Open `url` in a new page, attach to it, and return once it has
    /// loaded (its `load` event, as Chromium reports it).
    pub fn open(&mut self, url: &str) {
        let target = self.call(
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            false,
        );
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
            false,
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call("Page.enable", json!({}), true);
        self.call("Page.navigate", json!({ "url": url }), true);
        self.wait_event("Page.loadEventFired");
    }

    /// Wait (30 s at most) for an event of the attached page.
    fn wait_event(&mut self, method: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(event)
                    if event["method"] == method && event["sessionId"] == json!(self.session) =>
                {
                    return;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("chromium never sent {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium went away ({method})"),
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
            true,
        );
        result["result"]["value"].clone()
    }

    /// Lay pages out as on a screen `width` CSS pixels wide (a phone's,
    /// with `mobile`), `height` high.
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
            true,
        );
    }

    /// Go to `url` in the attached page and wait until it has loaded.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }), true);
        self.wait_event("Page.loadEventFired");
    }

    /// The page as a PNG, all of it (not only what the window shows).
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
            true,
        );
        base64_decode(shot["data"].as_str().expect("the picture"))
    }

    /// The page's text as a person sees it.
    pub fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait (25 s at most) until the page's text holds `needle`; the text.
    /// The page itself waits: a promise that a `MutationObserver` resolves
    /// when a change to the document brings the text in.
    pub fn wait_for_text(&mut self, needle: &str) -> String {
        let expression = format!(
            "new Promise(done => {{
                const needle = {needle};
                const look = () => {{
                    const text = document.body ? document.body.innerText : '';
                    if (text.includes(needle)) {{ watch.disconnect(); done({{found: true, text}}); }}
                }};
                const watch = new MutationObserver(look);
                watch.observe(document, {{subtree: true, childList: true, characterData: true}});
                setTimeout(() => {{
                    watch.disconnect();
                    done({{found: false, text: document.body ? document.body.innerText : ''}});
                }}, 25000);
                look();
            }})",
            needle = serde_json::to_string(needle).unwrap()
        );
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            true,
        );
        let value = &result["result"]["value"];
        let text = value["text"].as_str().unwrap_or_default().to_string();
        assert!(
            value["found"] == true,
            "the page never showed {needle:?}; it shows:\n{text}"
        );
        text
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let close = serde_json::to_vec(&json!({ "id": 0, "method": "Browser.close" })).unwrap();
        let _ = self.commands.write_all(&[close, vec![0]].concat());
        let _ = self.commands.flush();
        // Chromium closes itself; one that does not within 5 s is killed.
        if quire_exec::processes::exited_within(self.child.id(), Duration::from_secs(5)) {
            let _ = self.child.wait();
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64, as Chromium sends pictures.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
