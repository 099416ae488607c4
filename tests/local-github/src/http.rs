//! A small HTTP/1.1 server: one thread per connection, keep-alive, chunked
//! request bodies, `Expect: 100-continue`, streamed (chunked) responses, and
//! the ability to drop a connection without answering (fault injection).
//!
//! A hand-written server rather than tiny_http because a fault must be able to
//! close the socket without writing a response, and every response needs the
//! emulator's own (possibly skewed) `Date` header.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::LockExt;

/// How long an idle keep-alive connection (or a stalled body) may wait.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 512 * 1024 * 1024;

pub(crate) struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Value of a query-string parameter (no percent-decoding beyond `+`; the
    /// emulator's parameters are plain numbers and service names).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.replace('+', " "))
        })
    }
}

pub(crate) enum Body {
    Bytes(Vec<u8>),
    Stream(Box<dyn Read + Send>),
}

pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body.into()),
        }
    }

    pub fn empty(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// Sets a header, replacing any header of the same name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }

    /// Adds a header unless one of that name is present.
    pub fn default_header(&mut self, name: &str, value: impl Into<String>) {
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            self.headers.push((name.to_string(), value.into()));
        }
    }
}

pub(crate) enum Outcome {
    Respond(HttpResponse),
    /// Close the connection without writing anything.
    Drop,
}

pub(crate) type Handler = dyn Fn(HttpRequest) -> Outcome + Send + Sync;

pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    }

    /// Serves plain HTTP, or HTTPS when `tls` is given.
    pub fn start(
        listener: TcpListener,
        handler: Arc<Handler>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let next_id = AtomicU64::new(0);
        let accept = {
            let stop = stop.clone();
            let conns = conns.clone();
            std::thread::Builder::new()
                .name("local-github-accept".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        if let Ok(clone) = stream.try_clone() {
                            conns.guard().insert(id, clone);
                        }
                        let handler = handler.clone();
                        let conns = conns.clone();
                        let tls = tls.clone();
                        let spawned = std::thread::Builder::new()
                            .name("local-github-conn".into())
                            .spawn(move || {
                                let _ = serve_connection(stream, &*handler, tls);
                                conns.guard().remove(&id);
                            });
                        if spawned.is_err() {
                            // Out of threads: the stream was moved into the failed closure and dropped.
                        }
                    }
                })?
        };
        Ok(Server {
            addr,
            stop,
            conns,
            accept: Some(accept),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for (_, c) in self.conns.guard().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A connection the server reads requests from and writes answers to, in turn.
trait Conn: Read + Write {
    /// Closes the connection; `graceful` says whether the peer gets an orderly end (TLS close_notify).
    fn close(&mut self, graceful: bool);
}

impl Conn for TcpStream {
    fn close(&mut self, _graceful: bool) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close(&mut self, graceful: bool) {
        if graceful {
            self.conn.send_close_notify();
            let _ = self.flush();
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

fn serve_connection(
    stream: TcpStream,
    handler: &Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    match tls {
        None => serve_requests(stream, peer, handler),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            serve_requests(rustls::StreamOwned::new(conn, stream), peer, handler)
        }
    }
}

fn serve_requests<S: Conn>(stream: S, peer: SocketAddr, handler: &Handler) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                let writer = reader.get_mut();
                let _ = writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                writer.close(true);
                return Ok(());
            }
        }
        let method = parsed.method.unwrap_or("GET").to_string();
        let target = parsed.path.unwrap_or("/").to_string();
        let http11 = parsed.version == Some(1);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
        let keep_alive = if http11 {
            !connection.contains("close")
        } else {
            connection.contains("keep-alive")
        };
        if get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
            let writer = reader.get_mut();
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            writer.flush()?;
        }
        let chunked =
            get("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            read_chunked(&mut reader)?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
            if len > MAX_BODY {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        } else {
            Vec::new()
        };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target.clone(), String::new()),
        };
        let is_head = method == "HEAD";
        let request = HttpRequest {
            method,
            path,
            query,
            http11,
            headers,
            body,
            peer,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(request)))
            .unwrap_or_else(|_| {
                Outcome::Respond(HttpResponse::new(
                    500,
                    "text/plain; charset=utf-8",
                    "local-github: handler panicked\n",
                ))
            });
        match outcome {
            Outcome::Drop => {
                reader.get_mut().close(false);
                return Ok(());
            }
            Outcome::Respond(response) => {
                let writer = reader.get_mut();
                let keep = write_response(writer, response, http11, keep_alive, is_head)?;
                if !keep {
                    writer.close(true);
                    return Ok(());
                }
            }
        }
    }
}

/// Reads up to and including the blank line; None on a clean EOF before any byte.
fn read_head<S: Read>(reader: &mut BufReader<S>) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e)
                if head.is_empty()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::ConnectionReset
                    ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        // Tolerate stray CRLFs between pipelined requests.
        if head.is_empty() && (line == b"\r\n" || line == b"\n") {
            continue;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
}

fn read_chunked<S: Read>(reader: &mut BufReader<S>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size_str = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers until the blank line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Returns whether the connection may be kept open.
fn write_response<W: Write>(
    w: &mut W,
    response: HttpResponse,
    http11: bool,
    keep_alive: bool,
    is_head: bool,
) -> io::Result<bool> {
    let HttpResponse {
        status,
        headers,
        body,
    } = response;
    let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
    let mut keep = keep_alive;
    let mut head = format!(
        "HTTP/1.{} {} {}\r\n",
        if http11 { 1 } else { 0 },
        status,
        reason(status)
    );
    for (k, v) in &headers {
        let lk = k.to_ascii_lowercase();
        if lk == "content-length" || lk == "transfer-encoding" || lk == "connection" {
            continue;
        }
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    match body {
        Body::Bytes(bytes) => {
            if !(status == 204 || status == 304) {
                head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
            }
            head.push_str(if keep { "" } else { "Connection: close\r\n" });
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            if !no_body {
                out.extend_from_slice(&bytes);
            }
            w.write_all(&out)?;
        }
        Body::Stream(mut reader) => {
            if no_body {
                head.push_str("Content-Length: 0\r\n\r\n");
                w.write_all(head.as_bytes())?;
            } else if http11 {
                head.push_str("Transfer-Encoding: chunked\r\n");
                head.push_str(if keep { "" } else { "Connection: close\r\n" });
                head.push_str("\r\n");
                w.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    let mut chunk = format!("{n:X}\r\n").into_bytes();
                    chunk.extend_from_slice(&buf[..n]);
                    chunk.extend_from_slice(b"\r\n");
                    w.write_all(&chunk)?;
                }
                w.write_all(b"0\r\n\r\n")?;
            } else {
                keep = false;
                head.push_str("Connection: close\r\n\r\n");
                w.write_all(head.as_bytes())?;
                io::copy(&mut reader, w)?;
            }
        }
    }
    w.flush()?;
    Ok(keep)
}
