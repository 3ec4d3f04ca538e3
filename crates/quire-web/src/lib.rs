//! `quire-runs serve`: the home's runs, read-only, as web pages, live logs,
//! status badges and a JSON API (docs/WEB.md).
//!
//! axum on a tokio runtime of two worker threads; every store read runs on
//! a blocking thread with a read-only connection from a small pool
//! (`Store::open_read_only`), so a slow read never holds a request thread.
//! Nothing here writes: every route is GET (and HEAD); any other method is
//! answered 405 before routing.

mod ansi;
mod badge;
mod download;
mod fresh;
mod live;
mod pages;
mod raw;
mod timeline;
mod words;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quire_store::query::{ListCursor, ListFilter};
use quire_store::{Error, Home, JobState, Run, RunState, Store};
use sha2::{Digest, Sha256};

use live::{Follow, Next as Poll};
use pages::{Filters, Handover, Ids};
use quire_view::json;

/// How often a followed log is read.
const POLL: Duration = Duration::from_millis(100);
/// A comment on a quiet event stream this often keeps proxies from
/// closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Event streams followed at once, at most; more are answered 503.
const MAX_STREAMS: usize = 64;
/// Connections open at once, at most; one more is answered 503 and closed
/// at once, unread (docs/WEB.md, "Security").
pub const MAX_CONNECTIONS: usize = 256;
/// A request's line and headers must have arrived this long after the
/// server began to wait for them (a new connection, or the previous
/// response sent on a kept-alive one), or the connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// What a connection over [`MAX_CONNECTIONS`] is sent before it is closed.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 48\r\nConnection: close\r\nRetry-After: 5\r\n\r\n\
too many connections to quire-runs serve; retry\n";
/// Read-only connections kept open between requests.
const IDLE_STORES: usize = 8;
/// Runs on a page of `/`, and of `/api/runs` (as `quire-runs list`).
const PAGE_RUNS: usize = 50;
const API_RUNS: usize = 20;
/// The most `limit` may ask for.
const MAX_RUNS: usize = 500;
/// Branches `/repos` shows for each repository.
const BRANCHES_SHOWN: usize = 100;
/// Runs a repository's trend shows, and a branch's.
const TREND_RUNS: usize = 40;
const BRANCH_TREND_RUNS: usize = 12;

/// The policy every response carries: nothing but this server's own
/// stylesheet and script (by hash), and event streams from itself.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = |text: &str| base64(&Sha256::digest(text.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}' 'sha256-{}'; \
         connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'; require-trusted-types-for 'script'",
        hash(&pages::CSS),
        hash(pages::SCRIPT),
        hash(fresh::SCRIPT)
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// Standard base64 with padding (for the policy's hashes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The home or its store cannot be read.
    #[error(transparent)]
    Store(#[from] quire_store::Error),
    #[error("cannot start the server's threads: {0}")]
    Threads(std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// `quire-runs serve`: serve the runs of `home` (as `Home::resolve` takes
/// it) on `listen` until the process is stopped; its exit status.
pub fn run(home: Option<&std::path::Path>, listen: SocketAddr) -> Result<ExitCode, ServeError> {
    let home = Home::resolve(home)?;
    // Refuse a wrong home at once, not at the first visit.
    let store = Store::open_read_only(&home)?;
    let frozen_now = quire_model::clock::frozen_now_ms();
    let shared = Arc::new(Shared {
        home,
        idle: Mutex::new(vec![store]),
        frozen_now,
        streams: AtomicUsize::new(0),
        needs: timeline::NeedsRead::default(),
        counted: live::LinesCounted::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("quire-serve")
        .enable_all()
        .build()
        .map_err(ServeError::Threads)?;
    runtime.block_on(serve(shared, listen))
}

async fn serve(shared: Arc<Shared>, listen: SocketAddr) -> Result<ExitCode, ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Listen(listen, e))?;
    let addr = listener.local_addr().unwrap_or(listen);
    if !addr.ip().is_loopback() {
        eprintln!(
            "quire-runs serve: warning: {addr} is reachable from other machines, and the \
             pages have no login: put a reverse proxy with authentication in front (docs/WEB.md)"
        );
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "quire-runs serve: listening on http://{addr}/");
        let _ = stdout.flush();
    }
    Ok(accept_loop(listener, app(shared)).await)
}

/// Serve each connection accepted on its own task, at most
/// [`MAX_CONNECTIONS`] at once, each closed when a request's headers take
/// longer than [`HEADER_TIMEOUT`] (also an idle kept-alive one): an idle
/// or trickling client holds neither a slot nor memory for long.
async fn accept_loop(listener: tokio::net::TcpListener, router: Router) -> ExitCode {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut warned = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or a connection reset before it was
            // taken: not the server's end. Said once; a short pause lets
            // descriptors come back rather than spinning.
            Err(e) => {
                if !warned {
                    eprintln!("quire-runs serve: warning: cannot accept a connection: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Never waits on the client: what the socket's buffer takes.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(list_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(run_events))
        .route("/events/runs", get(runs_events))
        .route("/runs/{id}/jobs/{job}", get(job_page))
        .route("/runs/{id}/jobs/{job}/events", get(job_events))
        .route("/runs/{id}/jobs/{job}/log", get(job_log))
        .route("/runs/{id}/artifacts/{*path}", get(artifact))
        .route("/repos", get(repos_page))
        .route("/badge/{*path}", get(badge))
        .route("/api/runs", get(api_list))
        .route("/api/runs/{id}", get(api_run))
        .fallback(not_found)
        .layer(middleware::from_fn(guard))
        .with_state(shared)
}

/// What every request goes through: only GET and HEAD are let in, every
/// response gets the security headers, and a line goes to stderr.
async fn guard(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // hyper accepts no control character or space in a request target,
    // so this line is one line.
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let mut response = if method == Method::GET || method == Method::HEAD {
        next.run(request).await
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "405 method not allowed: nothing here changes anything\n",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    eprintln!(
        "{method} {target} {} {}ms",
        response.status().as_u16(),
        start.elapsed().as_millis()
    );
    response
}

/// What the handlers share: the home, idle read-only connections, "now".
struct Shared {
    home: Home,
    idle: Mutex<Vec<Store>>,
    /// `QUIRE_NOW`, when set: ages and durations as of then.
    frozen_now: Option<i64>,
    /// Event streams open now.
    streams: AtomicUsize,
    /// Each commit's `needs`, read once (a live run's page is fetched
    /// again at every change of the run).
    needs: timeline::NeedsRead,
    /// The lines before a long finished step's shown part, counted once.
    counted: live::LinesCounted,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.frozen_now.unwrap_or_else(quire_model::clock::now_ms)
    }

    /// Run `read` on a blocking thread with a read-only store (an idle one,
    /// else a new one), given "now".
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Store, i64) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let idle = shared.idle.lock().ok().and_then(|mut idle| idle.pop());
            let store = match idle {
                Some(store) => store,
                None => Store::open_read_only(&shared.home)?,
            };
            let result = read(&store, shared.now_ms());
            if let Ok(mut idle) = shared.idle.lock()
                && idle.len() < IDLE_STORES
            {
                idle.push(store);
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(Failure::Internal(format!("a read failed: {e}"))))
    }
}

/// Why a request cannot be answered as asked.
#[derive(Debug)]
enum Failure {
    NotFound(String),
    BadRequest(String),
    /// The store could not be read: said on stderr, not to the visitor.
    Internal(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::UnknownRun(_)
            | Error::AmbiguousRun { .. }
            | Error::UnknownJob { .. }
            | Error::UnknownRepo(_) => Failure::NotFound(e.to_string()),
            e => Failure::Internal(e.to_string()),
        }
    }
}

impl Failure {
    fn status_and_text(self) -> (StatusCode, String) {
        match self {
            Failure::NotFound(text) => (StatusCode::NOT_FOUND, text),
            Failure::BadRequest(text) => (StatusCode::BAD_REQUEST, text),
            Failure::Internal(text) => {
                eprintln!("quire-runs serve: error: {text}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not be read; the server's log says why".into(),
                )
            }
        }
    }

    fn html(self) -> Response {
        let (status, text) = self.status_and_text();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            _ => "Server error",
        };
        (status, html_type(), pages::message(title, &text)).into_response()
    }

    fn json(self) -> Response {
        let (status, text) = self.status_and_text();
        let body = serde_json::json!({ "error": text }).to_string() + "\n";
        (status, json_type(), body).into_response()
    }
}

fn html_type() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

fn json_type() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "application/json")]
}

fn html(result: Result<String, Failure>) -> Response {
    match result {
        Ok(page) => (html_type(), page).into_response(),
        Err(failure) => failure.html(),
    }
}

/// The filters of `/` and `/api/runs`: `repo` (a name), `ref`, `state`
/// (repeatable), `before` (a run id), `limit`. Empty values are unset;
/// unknown keys are ignored.
fn parse_filters(query: Option<&str>) -> Result<Filters, Failure> {
    let mut filters = Filters::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match &*key {
            "repo" => filters.repo = Some(value.to_string()),
            "ref" => filters.ref_name = Some(value.to_string()),
            "before" => filters.before = Some(value.to_string()),
            "state" => filters.states.push(RunState::parse(value).ok_or_else(|| {
                let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
                Failure::BadRequest(format!(
                    "{value:?} is not a run state; one of: {}",
                    names.join(", ")
                ))
            })?),
            "limit" => {
                filters.limit = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_RUNS).contains(n))
                        .ok_or_else(|| {
                            Failure::BadRequest(format!(
                                "limit must be a number from 1 to {MAX_RUNS}"
                            ))
                        })?,
                )
            }
            _ => {}
        }
    }
    Ok(filters)
}

/// The runs `filters` select, newest first, a page of `limit` (or
/// `default`); and the id of its last run when older runs follow.
fn select_runs(
    store: &Store,
    filters: &Filters,
    default: usize,
) -> Result<(Vec<Run>, Option<String>), Failure> {
    let repo_id = match &filters.repo {
        Some(name) => Some(store.resolve_repo_name(name)?.id),
        None => None,
    };
    let before = match &filters.before {
        Some(id) => Some(ListCursor::after(&store.resolve_run(id)?)),
        None => None,
    };
    let limit = filters.limit.unwrap_or(default);
    // A ref as `list --ref` takes it: full, short, or a glob.
    let refs = quire_view::select::Scope {
        ref_name: filters.ref_name.clone(),
        ..Default::default()
    }
    .filter(store)?;
    let mut runs = store.list_runs(&ListFilter {
        repo_id,
        ref_names: refs.ref_names,
        ref_globs: refs.ref_globs,
        states: filters.states.clone(),
        sha_prefix: None,
        since_ms: None,
        before,
        limit: limit + 1,
    })?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    let older = more.then(|| runs.last().map(|r| r.id.clone())).flatten();
    Ok((runs, older))
}

type App = State<Arc<Shared>>;

async fn list_page(State(app): App, RawQuery(query): RawQuery) -> Response {
    let filters = match parse_filters(query.as_deref()) {
        Ok(filters) => filters,
        Err(failure) => return failure.html(),
    };
    html(
        app.read(move |store, now| {
            // Read before the runs: a change after it shows on the page or
            // is told by the stream.
            let stamp = fresh::stamp(store, &fresh::Watch::Runs)?;
            let (runs, older) = select_runs(store, &filters, PAGE_RUNS)?;
            let older = older.map(|id| {
                Filters {
                    before: Some(id),
                    ..filters.clone()
                }
                .url("/")
            });
            let ids = Ids::read(
                store,
                &runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            )?;
            Ok(pages::list(now, &ids, &filters, &runs, older, &stamp))
        })
        .await,
    )
}

/// The most of a failing step's log the run page reads for its last
/// [`pages::TAIL_LINES`] lines.
const TAIL_BYTES: u64 = 64 << 10;

async fn run_page(State(app): App, UrlPath(id): UrlPath<String>) -> Response {
    let shared = Arc::clone(&app);
    html(
        app.read(move |store, now| {
            let run = store.resolve_run(&id)?;
            let detail = store.run_detail(&run.id)?;
            let stamp = fresh::run_stamp(&detail);
            let mut shown = vec![run.id.as_str()];
            shown.extend(run.superseded_by.as_deref());
            shown.extend(run.retry_of.as_deref());
            let ids = Ids::read(store, &shown)?;
            // The last lines of the failures that fail the run: an allowed
            // failure's would lead the eye away from what broke it.
            let mut tails = std::collections::HashMap::new();
            for job in detail
                .jobs
                .iter()
                .filter(|j| j.job.state == JobState::Failed && j.job.allow_failure != Some(true))
            {
                let Some(step) = job.ending_step() else {
                    continue;
                };
                // Enough bytes for the lines shown; nothing before is read.
                let mut lines = live::step_tail(store, &run.id, &job.job.id, step.seq, TAIL_BYTES)?;
                lines.drain(..lines.len().saturating_sub(pages::TAIL_LINES));
                tails.insert(job.job.id.clone(), (step.seq, lines));
            }
            let extras = pages::RunExtras {
                needs: shared.needs.of(&run),
                tails,
            };
            Ok(pages::run(now, &ids, &detail, &extras, &stamp))
        })
        .await,
    )
}

/// A kept artifact's bytes, as a download (docs/WEB.md).
async fn artifact(State(app): App, UrlPath((id, path)): UrlPath<(String, String)>) -> Response {
    let found = app
        .read(move |store, _| {
            let run = store.resolve_run(&id)?;
            let (job, path) = path.split_once('/').unwrap_or((&path, ""));
            download::find(store, &run.id, job, path)?
                .ok_or_else(|| Failure::NotFound(format!("run {} kept no such artifact", run.id)))
        })
        .await;
    let found = match found {
        Ok(found) => found,
        Err(failure) => return failure.html(),
    };
    let size = found.artifact.size;
    let disposition = download::disposition(&found.artifact.path);
    let state = Some((found, 0u64, Sha256::new()));
    let stream = futures_util::stream::unfold(state, |state| async move {
        let (mut found, mut sent, mut hash) = state?;
        let read = tokio::task::spawn_blocking(move || {
            let chunk = download::next_chunk(&mut found, &mut sent, &mut hash);
            (chunk, found, sent, hash)
        })
        .await;
        match read {
            Ok((Ok(Some(chunk)), found, sent, hash)) => {
                Some((Ok(chunk), Some((found, sent, hash))))
            }
            Ok((Ok(None), ..)) => None,
            Ok((Err(e), ..)) => {
                eprintln!("quire-runs serve: error: {e}");
                Some((Err(e), None))
            }
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn job_page(State(app): App, UrlPath((id, job)): UrlPath<(String, String)>) -> Response {
    let shared = Arc::clone(&app);
    html(
        app.read(move |store, now| {
            let run = store.resolve_run(&id)?;
            let detail = store.run_detail(&run.id)?;
            let Some(found) = detail.jobs.iter().find(|j| j.job.id == job) else {
                return Err(Error::UnknownJob { run: run.id, job }.into());
            };
            let live = !found.job.state.is_terminal() && !detail.run.state.is_terminal();
            let mut logs = Vec::with_capacity(found.steps.len());
            let mut handover = None;
            for step in &found.steps {
                let finished = step.exit_code.is_some();
                let log =
                    live::step_log(store, &run.id, &job, step.seq, finished, &shared.counted)?;
                if live && !finished && handover.is_none() {
                    handover = Some(Handover {
                        seq: step.seq,
                        offset: log.offset,
                    });
                }
                logs.push(log);
            }
            if live && handover.is_none() {
                handover = Some(Handover {
                    seq: found.steps.last().map_or(1, |s| s.seq + 1),
                    offset: 0,
                });
            }
            let ids = Ids::read(store, &[run.id.as_str()])?;
            Ok(pages::job(now, &ids, &detail, found, &logs, handover))
        })
        .await,
    )
}

/// A job's whole log as plain text (docs/WEB.md), a chunk at a time.
async fn job_log(State(app): App, UrlPath((id, job)): UrlPath<(String, String)>) -> Response {
    let found = app
        .read(move |store, _| {
            let run = store.resolve_run(&id)?;
            let detail = store.run_detail(&run.id)?;
            let Some(found) = detail.jobs.iter().find(|j| j.job.id == job) else {
                return Err(Error::UnknownJob { run: run.id, job }.into());
            };
            let steps = found.steps.iter().map(|s| (s.seq, s.cmd.clone())).collect();
            Ok(raw::RawLog::new(run.id, job, steps))
        })
        .await;
    let log = match found {
        Ok(log) => log,
        Err(failure) => return failure.html(),
    };
    let stream = futures_util::stream::unfold(Some(log), move |log| {
        let app = Arc::clone(&app);
        async move {
            let mut log = log?;
            let read = app
                .read(move |store, _| {
                    let chunk = log.next_chunk(store)?;
                    Ok((chunk, log))
                })
                .await;
            match read {
                Ok((Some(chunk), log)) => Some((Ok(chunk), Some(log))),
                Ok((None, _)) => None,
                Err(failure) => {
                    let (_, text) = failure.status_and_text();
                    Some((Err(std::io::Error::other(text)), None))
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A place among the event streams; given back when the stream ends.
struct StreamSlot(Arc<Shared>);

impl StreamSlot {
    fn take(shared: &Arc<Shared>) -> Option<StreamSlot> {
        if shared.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
            shared.streams.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamSlot(Arc::clone(shared)))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A job's output as server-sent events from `step`/`offset` (or the
/// `Last-Event-ID` a reconnecting browser sends) until the job ends.
async fn job_events(
    State(app): App,
    UrlPath((id, job)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (mut seq, mut offset) = (1, 0);
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let bad = || Failure::BadRequest(format!("{key} must be a number")).html();
        match &*key {
            "step" => match value.parse::<i64>() {
                Ok(n) if n >= 1 => seq = n,
                _ => return bad(),
            },
            "offset" => match value.parse::<u64>() {
                Ok(n) => offset = n,
                Err(_) => return bad(),
            },
            _ => {}
        }
    }
    if let Some((s, o)) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Follow::parse_position)
    {
        (seq, offset) = (s, o);
    }
    let found = app
        .read(move |store, _| {
            let run = store.resolve_run(&id)?;
            let detail = store.run_detail(&run.id)?;
            let planned = !detail.jobs.is_empty();
            if (planned || run.state.is_terminal()) && !detail.jobs.iter().any(|j| j.job.id == job)
            {
                return Err(Error::UnknownJob { run: run.id, job }.into());
            }
            Ok((run.id, job))
        })
        .await;
    let (run, job) = match found {
        Ok(found) => found,
        Err(failure) => return failure.html(),
    };
    let Some(slot) = StreamSlot::take(&app) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logs are followed at once; reload the page later\n",
        )
            .into_response();
    };
    let follow = Follow {
        run,
        job,
        seq,
        offset,
        announced: false,
        state: None,
    };
    let first = "retry: 1000\n\n".to_string();
    let stream = futures_util::stream::unfold(Some((follow, slot, Some(first))), move |state| {
        let app = Arc::clone(&app);
        async move {
            let (mut follow, slot, first) = state?;
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(first), Some((follow, slot, None))));
            }
            let quiet_since = Instant::now();
            loop {
                let polled = app
                    .read(move |store, _| {
                        let mut out = String::new();
                        let next = live::poll(store, &mut follow, &mut out)?;
                        Ok((follow, next, out))
                    })
                    .await;
                let (moved, next, out) = match polled {
                    Ok(polled) => polled,
                    Err(failure) => {
                        let _ = failure.status_and_text();
                        let end = "event: end\ndata: {\"state\":\"unknown\",\"exit\":null}\n\n";
                        return Some((Ok(end.to_string()), None));
                    }
                };
                follow = moved;
                match next {
                    Poll::Done => return Some((Ok(out), None)),
                    _ if !out.is_empty() => return Some((Ok(out), Some((follow, slot, None)))),
                    Poll::More => {}
                    Poll::Wait if quiet_since.elapsed() >= KEEP_ALIVE => {
                        return Some((
                            Ok(": still running\n\n".to_string()),
                            Some((follow, slot, None)),
                        ));
                    }
                    Poll::Wait => tokio::time::sleep(POLL).await,
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// That the runs changed, as server-sent events (docs/WEB.md): for the
/// runs list and the repositories page.
async fn runs_events(State(app): App, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    changes(app, fresh::Watch::Runs, query, &headers)
}

/// That a run changed, as server-sent events, until it has ended.
async fn run_events(
    State(app): App,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let found = app
        .read(move |store, _| Ok(store.resolve_run(&id)?.id))
        .await;
    match found {
        Ok(id) => changes(app, fresh::Watch::Run(id), query, &headers),
        Err(failure) => failure.html(),
    }
}

/// A stream of `change` events, each when the stamp of what `watch`
/// follows differs from the last one the page had (`?since=`, or the
/// `Last-Event-ID` of a reconnecting browser), and an `end` when it can
/// change no more.
fn changes(
    app: Arc<Shared>,
    watch: fresh::Watch,
    query: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let mut since = None;
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if key == "since" && fresh::is_stamp(&value) {
            since = Some(value.into_owned());
        }
    }
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| fresh::is_stamp(v))
    {
        since = Some(last.to_string());
    }
    let Some(slot) = StreamSlot::take(&app) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages are followed at once; reload the page later\n",
        )
            .into_response();
    };
    let first = "retry: 1000\n\n".to_string();
    let state = Some((since, slot, Some(first)));
    let stream = futures_util::stream::unfold(state, move |state| {
        let app = Arc::clone(&app);
        let watch = watch.clone();
        async move {
            let (mut since, slot, first) = state?;
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(first), Some((since, slot, None))));
            }
            let quiet_since = Instant::now();
            loop {
                let watch = watch.clone();
                let stamp = match app
                    .read(move |store, _| Ok(fresh::stamp(store, &watch)?))
                    .await
                {
                    Ok(stamp) => Some(stamp),
                    // A run gone (pruned): nothing more to follow.
                    Err(Failure::NotFound(_)) => {
                        return Some((Ok("event: end\ndata: null\n\n".to_string()), None));
                    }
                    // A store busy for a moment: the next look tells. The
                    // keep-alive below still goes out meanwhile, so a page
                    // closed while the store cannot be read is noticed and
                    // its slot given back.
                    Err(_) => None,
                };
                if let Some(stamp) = stamp {
                    let mut out = String::new();
                    if since.as_deref() != Some(stamp.text.as_str()) {
                        out = format!("event: change\nid: {0}\ndata: \"{0}\"\n\n", stamp.text);
                        since = Some(stamp.text);
                    }
                    if stamp.done {
                        out.push_str("event: end\ndata: null\n\n");
                        return Some((Ok(out), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(out), Some((since, slot, None))));
                    }
                }
                if quiet_since.elapsed() >= KEEP_ALIVE {
                    return Some((Ok(": no change\n\n".to_string()), Some((since, slot, None))));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn repos_page(State(app): App) -> Response {
    html(
        app.read(move |store, now| {
            let stamp = fresh::stamp(store, &fresh::Watch::Runs)?;
            let mut repos = Vec::new();
            for repo in store.repo_list()? {
                let branches =
                    store.newest_per_ref(repo.id, quire_model::refs::HEADS, BRANCHES_SHOWN)?;
                let recent = recent_runs(store, repo.id, None, TREND_RUNS)?;
                let mut trends = Vec::with_capacity(branches.len());
                for run in &branches {
                    trends.push(recent_runs(
                        store,
                        repo.id,
                        Some(&run.ref_name),
                        BRANCH_TREND_RUNS,
                    )?);
                }
                repos.push(pages::RepoView {
                    repo,
                    branches,
                    recent,
                    trends,
                });
            }
            let shown: Vec<&str> = repos
                .iter()
                .flat_map(|r| r.branches.iter().map(|r| r.id.as_str()))
                .collect();
            let ids = Ids::read(store, &shown)?;
            Ok(pages::repos(now, &ids, &repos, BRANCHES_SHOWN, &stamp))
        })
        .await,
    )
}

/// A repository's newest runs (of one ref, if given), newest first.
fn recent_runs(
    store: &Store,
    repo_id: i64,
    ref_name: Option<&str>,
    limit: usize,
) -> Result<Vec<Run>, Failure> {
    Ok(store.list_runs(&ListFilter {
        repo_id: Some(repo_id),
        ref_names: ref_name.map(str::to_string).into_iter().collect(),
        limit,
        ..ListFilter::default()
    })?)
}

async fn badge(State(app): App, UrlPath(path): UrlPath<String>) -> Response {
    let Some(path) = path.strip_suffix(".svg").map(str::to_string) else {
        return Failure::NotFound("a badge's address ends in .svg".into()).html();
    };
    let found = app
        .read(move |store, _| Ok(badge::resolve(store, &path)?))
        .await;
    let (status, code) = match found {
        Ok(Some(run)) => (badge::Status::of(run.as_ref()), StatusCode::OK),
        Ok(None) => (badge::Status::Unknown, StatusCode::NOT_FOUND),
        Err(failure) => return failure.html(),
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        badge::svg(status),
    )
        .into_response()
}

async fn api_list(State(app): App, RawQuery(query): RawQuery) -> Response {
    let filters = match parse_filters(query.as_deref()) {
        Ok(filters) => filters,
        Err(failure) => return failure.json(),
    };
    let listed = app
        .read(move |store, now| {
            let (runs, older) = select_runs(store, &filters, API_RUNS)?;
            let objects: Vec<_> = runs.iter().map(|r| json::run(r, now)).collect();
            let body = json::whole_text(&objects).map_err(|e| Failure::Internal(e.to_string()))?;
            let next = older.map(|id| {
                Filters {
                    before: Some(id),
                    ..filters.clone()
                }
                .url("/api/runs")
            });
            Ok((body, next))
        })
        .await;
    match listed {
        Ok((body, next)) => {
            let mut response = (json_type(), body).into_response();
            if let Some(link) =
                next.and_then(|next| HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")).ok())
            {
                response.headers_mut().insert(header::LINK, link);
            }
            response
        }
        Err(failure) => failure.json(),
    }
}

async fn api_run(State(app): App, UrlPath(id): UrlPath<String>) -> Response {
    let shown = app
        .read(move |store, now| {
            let run = store.resolve_run(&id)?;
            let detail = store.run_detail(&run.id)?;
            json::whole_text(&json::detail(&detail, now))
                .map_err(|e| Failure::Internal(e.to_string()))
        })
        .await;
    match shown {
        Ok(body) => (json_type(), body).into_response(),
        Err(failure) => failure.json(),
    }
}

async fn not_found(uri: Uri) -> Response {
    let failure = Failure::NotFound(format!("nothing is at {}", uri.path()));
    if uri.path().starts_with("/api/") {
        failure.json()
    } else {
        failure.html()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_csp_hashes_want_it() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(&Sha256::digest(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn filters_parse_as_forms_send_them() {
        let f = parse_filters(Some(
            "repo=a%2Fb.git&ref=&state=failed&state=active&limit=5&x=1",
        ))
        .unwrap();
        assert_eq!(f.repo.as_deref(), Some("a/b.git"));
        assert_eq!(f.ref_name, None);
        assert_eq!(f.states, [RunState::Failed, RunState::Active]);
        assert_eq!(f.limit, Some(5));
        assert!(matches!(
            parse_filters(Some("state=done")),
            Err(Failure::BadRequest(_))
        ));
        assert!(matches!(
            parse_filters(Some("limit=0")),
            Err(Failure::BadRequest(_))
        ));
    }
}
