//! git's credential helper protocol, as git 2.47 speaks it: the operation from argv, the request from
//! stdin (`key=value` lines ended by a blank line or EOF), the answer on stdout.
//!
//! Parsing is strict where a lax reader has been exploited (CVE-2020-5260, CVE-2020-11008,
//! CVE-2024-52006): a NUL or a bare CR anywhere, a line over git's 65535-byte limit, a line without
//! `=`, a repeated single-valued key, or a request without `protocol` and `host` is refused. Keys we do
//! not use (`capability[]`, `wwwauth[]`, `state[]`, anything newer) are ignored, as git asks.

use crate::secret::Secret;
use std::fmt;
use std::io::{self, Write};

/// Longest line git will write, LF included (`Documentation/git-credential.txt` since 2.46).
pub const MAX_LINE: usize = 65535;
/// Largest request we read. git's own requests are a few hundred bytes; a few long `wwwauth[]`
/// headers stay far below this.
pub const MAX_INPUT: usize = 1 << 20;

/// What git asks the helper to do (the last argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    Store,
    Erase,
}

impl Operation {
    /// `get`, `store`, `erase`; anything else is not ours to answer (`None`), and git expects the
    /// helper to ignore it silently.
    pub fn from_arg(arg: &str) -> Option<Operation> {
        match arg {
            "get" => Some(Operation::Get),
            "store" => Some(Operation::Store),
            "erase" => Some(Operation::Erase),
            _ => None,
        }
    }
}

/// The attributes of a request that this helper uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// `https`, or `http` for the loopback hosts the tests use.
    pub protocol: String,
    /// Host name with `:port` if the URL had one, as git sent it (case preserved).
    pub host: String,
    /// The repository path (`owner/repo.git`), sent only with `credential.useHttpPath=true`.
    pub path: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// Why a request was refused. Each message is one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooLarge,
    LineTooLong,
    Nul,
    CarriageReturn { key: String },
    NoSeparator,
    EmptyKey,
    Duplicate { key: String },
    NotUtf8 { key: String },
    MissingProtocol,
    MissingHost,
    BadUrl(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLarge => {
                write!(f, "refusing a credential request over {MAX_INPUT} bytes")
            }
            ParseError::LineTooLong => {
                write!(
                    f,
                    "refusing a credential request with a line over {MAX_LINE} bytes"
                )
            }
            ParseError::Nul => write!(f, "refusing a credential request containing a NUL byte"),
            ParseError::CarriageReturn { key } => write!(
                f,
                "refusing a credential request whose '{}' contains a carriage return",
                printable(key)
            ),
            ParseError::NoSeparator => {
                write!(
                    f,
                    "refusing a malformed credential request (a line without '=')"
                )
            }
            ParseError::EmptyKey => {
                write!(
                    f,
                    "refusing a malformed credential request (a line with an empty key)"
                )
            }
            ParseError::Duplicate { key } => {
                write!(
                    f,
                    "refusing a credential request that repeats '{}'",
                    printable(key)
                )
            }
            ParseError::NotUtf8 { key } => {
                write!(
                    f,
                    "refusing a credential request whose '{}' is not UTF-8",
                    printable(key)
                )
            }
            ParseError::MissingProtocol => {
                write!(f, "refusing a credential request without a 'protocol'")
            }
            ParseError::MissingHost => write!(f, "refusing a credential request without a 'host'"),
            ParseError::BadUrl(why) => write!(f, "refusing a credential request: 'url' {why}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Read one request from `input`: up to and including the blank line that ends it, or to end of
/// input, and at most [`MAX_INPUT`] + 1 bytes (the parser refuses more). git closes the pipe after
/// the request; a client that keeps it open gets its answer all the same, as git's own helpers
/// stop reading at the blank line.
pub fn read_request(input: &mut dyn io::BufRead) -> io::Result<Vec<u8>> {
    let mut request = Vec::new();
    let mut limited = io::Read::take(input, MAX_INPUT as u64 + 1);
    loop {
        let start = request.len();
        if io::BufRead::read_until(&mut limited, b'\n', &mut request)? == 0 {
            return Ok(request); // end of input
        }
        let line = &request[start..];
        if line == b"\n" || line == b"\r\n" {
            return Ok(request);
        }
    }
}

/// A key as it may be shown on a terminal: control characters escaped, length capped.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Protocol,
    Host,
    Path,
    Username,
    Password,
    Url,
}

impl Field {
    fn from_key(key: &[u8]) -> Option<Field> {
        Some(match key {
            b"protocol" => Field::Protocol,
            b"host" => Field::Host,
            b"path" => Field::Path,
            b"username" => Field::Username,
            b"password" => Field::Password,
            b"url" => Field::Url,
            _ => return None,
        })
    }
}

/// Parse a whole request as read from stdin.
pub fn parse(input: &[u8]) -> Result<Request, ParseError> {
    if input.len() > MAX_INPUT {
        return Err(ParseError::TooLarge);
    }
    let mut request = Request::default();
    let mut seen: Vec<Field> = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (line, after, had_lf) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &rest[rest.len()..], false),
        };
        rest = after;
        if line.len() + usize::from(had_lf) > MAX_LINE {
            return Err(ParseError::LineTooLong);
        }
        // git reads with strbuf_getline, which drops one CR before the LF.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // a blank line ends the request
        }
        if line.contains(&0) {
            return Err(ParseError::Nul);
        }
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or(ParseError::NoSeparator)?;
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        if key.is_empty() {
            return Err(ParseError::EmptyKey);
        }
        if line.contains(&b'\r') {
            return Err(ParseError::CarriageReturn {
                key: String::from_utf8_lossy(key).into_owned(),
            });
        }
        let Some(field) = Field::from_key(key) else {
            continue; // capability[], wwwauth[], state[], password_expiry_utc, ...: not ours
        };
        let key_name = || String::from_utf8_lossy(key).into_owned();
        if seen.contains(&field) {
            return Err(ParseError::Duplicate { key: key_name() });
        }
        seen.push(field);
        let value =
            std::str::from_utf8(value).map_err(|_| ParseError::NotUtf8 { key: key_name() })?;
        match field {
            Field::Protocol => request.protocol = value.to_owned(),
            Field::Host => request.host = value.to_owned(),
            Field::Path => request.path = Some(value.to_owned()),
            Field::Username => request.username = Some(value.to_owned()),
            Field::Password => request.password = Some(Secret::new(value)),
            Field::Url => {
                // Like git's credential_from_url: a url replaces everything read before it.
                request = from_url(value)?;
                seen.retain(|f| *f == Field::Url);
            }
        }
    }
    if request.protocol.is_empty() {
        return Err(ParseError::MissingProtocol);
    }
    if request.host.is_empty() {
        return Err(ParseError::MissingHost);
    }
    Ok(request)
}

/// Split `scheme://[user[:password]@]host[:port][/path]` the way git does, percent-decoding the parts.
fn from_url(url: &str) -> Result<Request, ParseError> {
    // A port of git's credential_from_url_1 (credential.c, v2.47), so that we read a URL exactly
    // as git does: the first '@' counts only before the end of the host part, which ends at the
    // first '/', '?' or '#'.
    let (scheme, rest) = url
        .split_once("://")
        .ok_or(ParseError::BadUrl("has no scheme"))?;
    if scheme.is_empty() {
        return Err(ParseError::BadUrl("has an empty scheme"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest.find('@').filter(|&at| at < end);
    let (userinfo, host) = match at {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..end]),
        None => (None, &rest[..end]),
    };
    let mut request = Request {
        protocol: scheme.to_owned(),
        host: decode(host)?,
        ..Request::default()
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        request.username = Some(decode(user)?);
        request.password = password.map(decode).transpose()?.map(Secret::new);
    }
    let path = rest[end..].trim_start_matches('/');
    if !path.is_empty() {
        let path = decode(path)?;
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            request.path = Some(path.to_owned());
        }
    }
    Ok(request)
}

/// Percent-decode one URL part; the result must be UTF-8 without control characters.
fn decode(part: &str) -> Result<String, ParseError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let decoded =
        String::from_utf8(out).map_err(|_| ParseError::BadUrl("is not UTF-8 once decoded"))?;
    if decoded.chars().any(char::is_control) {
        return Err(ParseError::BadUrl(
            "contains a control character once decoded",
        ));
    }
    Ok(decoded)
}

/// What `get` prints: only the attributes git should overwrite, in a fixed order.
#[derive(Debug)]
pub struct Answer {
    pub username: String,
    pub password: Secret,
    /// Unix seconds after which git must not use the password.
    pub expiry: u64,
}

impl Answer {
    /// Write the answer; refuses values that could break the line protocol or inject attributes
    /// (a hostile or broken API answering with a token containing a newline, say).
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let safe = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
        if !safe(&self.username) || !safe(self.password.expose()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "refusing to print a username or token with spaces or control characters",
            ));
        }
        let text = format!(
            "username={}\npassword={}\npassword_expiry_utc={}\n",
            self.username,
            self.password.expose(),
            self.expiry
        );
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Request {
        parse(input.as_bytes()).unwrap()
    }

    fn err(input: &[u8]) -> ParseError {
        parse(input).unwrap_err()
    }

    #[test]
    fn reads_what_git_sends_for_an_http_get() {
        let r = ok(
            "capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=github.com\npath=acme/widgets.git\nwwwauth[]=Basic realm=\"GitHub\"\n",
        );
        assert_eq!(r.protocol, "https");
        assert_eq!(r.host, "github.com");
        assert_eq!(r.path.as_deref(), Some("acme/widgets.git"));
        assert_eq!(r.username, None);
    }

    #[test]
    fn blank_line_ends_the_request_and_crlf_is_accepted() {
        let r = ok("protocol=https\r\nhost=github.com\r\n\r\nhost=evil.example\n");
        assert_eq!(r.host, "github.com");
    }

    #[test]
    fn reading_stops_at_the_blank_line() {
        let mut input: &[u8] = b"protocol=https\nhost=github.com\n\nleft=for later\n";
        let request = read_request(&mut input).unwrap();
        assert_eq!(request, b"protocol=https\nhost=github.com\n\n");
        assert_eq!(input, b"left=for later\n");
        let mut input: &[u8] = b"protocol=https\r\nhost=x\r\n\r\nmore";
        assert_eq!(
            read_request(&mut input).unwrap(),
            b"protocol=https\r\nhost=x\r\n\r\n"
        );
        let mut input: &[u8] = b"protocol=https\nhost=x";
        assert_eq!(read_request(&mut input).unwrap(), b"protocol=https\nhost=x");
        let big = vec![b'a'; MAX_INPUT + 10];
        assert_eq!(read_request(&mut &big[..]).unwrap().len(), MAX_INPUT + 1);
    }

    #[test]
    fn eof_without_newline_is_fine() {
        assert_eq!(ok("protocol=https\nhost=github.com").host, "github.com");
    }

    #[test]
    fn refuses_cr_nul_missing_fields_and_duplicates() {
        assert_eq!(
            err(b"protocol=https\nhost=github.com\rhost=evil\n"),
            ParseError::CarriageReturn { key: "host".into() }
        );
        assert_eq!(err(b"protocol=https\nhost=git\0hub.com\n"), ParseError::Nul);
        assert_eq!(err(b"protocol=https\n"), ParseError::MissingHost);
        assert_eq!(err(b"host=github.com\n"), ParseError::MissingProtocol);
        assert_eq!(err(b"protocol=https\nhost=\n"), ParseError::MissingHost);
        assert_eq!(
            err(b"protocol=https\nhost=a\nhost=b\n"),
            ParseError::Duplicate { key: "host".into() }
        );
        assert_eq!(err(b"protocol=https\nhost\n"), ParseError::NoSeparator);
        assert_eq!(err(b"=x\nprotocol=https\nhost=a\n"), ParseError::EmptyKey);
        assert_eq!(
            err(b"protocol=https\nhost=\xff\n"),
            ParseError::NotUtf8 { key: "host".into() }
        );
    }

    #[test]
    fn unknown_keys_may_repeat_and_need_not_be_utf8() {
        let r =
            parse(b"wwwauth[]=a\nwwwauth[]=\xff\xfe\nprotocol=https\nhost=github.com\nfuture=1\n")
                .unwrap();
        assert_eq!(r.host, "github.com");
    }

    #[test]
    fn long_lines_and_inputs_are_refused() {
        let long = format!(
            "protocol=https\nhost=github.com\nwwwauth[]={}\n",
            "a".repeat(MAX_LINE)
        );
        assert_eq!(err(long.as_bytes()), ParseError::LineTooLong);
        let fits = format!(
            "protocol=https\nhost=github.com\nwwwauth[]={}\n",
            "a".repeat(MAX_LINE - 11)
        );
        assert!(parse(fits.as_bytes()).is_ok());
        assert_eq!(err(&vec![b'a'; MAX_INPUT + 1]), ParseError::TooLarge);
    }

    #[test]
    fn a_long_header_cannot_smuggle_a_host() {
        let input = format!(
            "protocol=https\nhost=github.com\nwwwauth[]={}host=victim.example.com\n",
            "x".repeat(1020)
        );
        assert_eq!(ok(&input).host, "github.com");
    }

    #[test]
    fn url_is_split_and_replaces_earlier_attributes() {
        let r = ok("host=old\nurl=https://x-access-token@GitHub.com:443/acme/widgets.git/\n");
        assert_eq!(r.protocol, "https");
        assert_eq!(r.host, "GitHub.com:443");
        assert_eq!(r.username.as_deref(), Some("x-access-token"));
        assert_eq!(r.path.as_deref(), Some("acme/widgets.git"));
        let r = ok("url=https://github.com\n");
        assert_eq!((r.host.as_str(), r.path), ("github.com", None));
        let r = ok("url=https://github.com/%2e%2e/x\n");
        assert_eq!(r.path.as_deref(), Some("../x"));
        assert_eq!(
            err(b"url=https://github.com/a%0ahost=evil\n"),
            ParseError::BadUrl("contains a control character once decoded")
        );
        assert_eq!(
            err(b"url=github.com/a\n"),
            ParseError::BadUrl("has no scheme")
        );
        assert_eq!(
            err(b"url=https://a\nurl=https://b\n"),
            ParseError::Duplicate { key: "url".into() }
        );
    }

    #[test]
    fn url_is_split_like_git_does() {
        // git: the host ends at '/', '?' or '#'; an '@' after that is not userinfo.
        let r = ok("url=http://x-access-token:@evil.example#@127.0.0.1:18090/a/b\n");
        assert_eq!(
            (r.host.as_str(), r.username.as_deref()),
            ("evil.example", Some("x-access-token"))
        );
        let r = ok("url=https://github.com?x=@127.0.0.1/a\n");
        assert_eq!(r.host, "github.com");
        let r = ok("url=https://u:p@github.com//acme/x.git\n");
        assert_eq!(
            (r.username.as_deref(), r.host.as_str(), r.path.as_deref()),
            (Some("u"), "github.com", Some("acme/x.git"))
        );
        assert_eq!(r.password.unwrap().expose(), "p");
    }

    #[test]
    fn operations() {
        assert_eq!(Operation::from_arg("get"), Some(Operation::Get));
        assert_eq!(Operation::from_arg("store"), Some(Operation::Store));
        assert_eq!(Operation::from_arg("erase"), Some(Operation::Erase));
        assert_eq!(Operation::from_arg("capability"), None);
    }

    #[test]
    fn answer_is_written_in_order_and_refuses_injection() {
        let mut out = Vec::new();
        Answer {
            username: "x-access-token".into(),
            password: Secret::new("ghs_abc"),
            expiry: 42,
        }
        .write_to(&mut out)
        .unwrap();
        assert_eq!(
            out,
            b"username=x-access-token\npassword=ghs_abc\npassword_expiry_utc=42\n"
        );
        let mut out = Vec::new();
        let bad = Answer {
            username: "x-access-token".into(),
            password: Secret::new("a\nhost=evil"),
            expiry: 1,
        };
        assert!(bad.write_to(&mut out).is_err());
        assert!(out.is_empty());
    }
}
