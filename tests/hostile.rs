//! Hostile input (issue 5): a table of malformed requests, each with the
//! status and OCI error code (distribution-spec "Error Codes" table) it must
//! get. Every case must be answered by the registry with a JSON error body
//! (or, for headers the protocol says to ignore, a plain success), never a
//! 5xx; afterwards the server must still serve and must have stored nothing.
//!
//! Requests go over raw HTTP/1.1 so that paths reach the server exactly as
//! written (an HTTP client library would normalise `..` and `//`, encode
//! bytes, and refuse impossible `Content-Length`s).

mod common;

use common::content::{Manifest, descriptor as desc};
use common::{Berth, sha256_digest};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The repository the stateless corpus addresses (it never comes to exist).
const REPO: &str = "hostile/repo";

/// `u64::MAX` and one more, as decimal text.
const U64_MAX: &str = "18446744073709551615";
const U64_OVER: &str = "18446744073709551616";

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// An OCI error response: this status and this spec code as the first
    /// entry of a JSON `{"errors":[...]}` body.
    Error(u16, &'static str),
    /// A success: the header is one the protocol says to ignore (RFC 9110
    /// lets a server ignore a `Range` it does not understand).
    Status(u16),
    /// Refused by the HTTP layer before any routing (a `Content-Length`
    /// that is not a number hyper can frame a body with): some 4xx, and
    /// necessarily no registry error body.
    Framing,
}

/// One hostile request.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    /// Sent verbatim. In the session corpus `{session}` becomes the path of a
    /// fresh upload session of the fixture repository, `{session4}` one that
    /// already holds 4 bytes, and `{id}` that session's id.
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    want: Want,
}

fn case(method: &'static str, path: impl Into<String>) -> Case {
    Case {
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        want: Want::Status(0),
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = body.into();
        self
    }

    fn manifest(self, content_type: &str, body: impl Into<Vec<u8>>) -> Case {
        self.header("Content-Type", content_type).body(body)
    }

    fn error(mut self, status: u16, code: &'static str) -> Case {
        self.want = Want::Error(status, code);
        self
    }

    fn status(mut self, status: u16) -> Case {
        self.want = Want::Status(status);
        self
    }

    fn framing(mut self) -> Case {
        self.want = Want::Framing;
        self
    }

    /// A short description for failure messages (paths can be 300 bytes).
    fn label(&self) -> String {
        let mut path: String = self.path.escape_debug().collect();
        if path.len() > 120 {
            path.truncate(120);
            path.push('…');
        }
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v: String = v.chars().take(60).collect();
                format!("{k}: {v}")
            })
            .collect();
        format!(
            "{} {path} {headers:?} ({} body bytes)",
            self.method,
            self.body.len()
        )
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection. The body is written from another
/// thread while the response is read, because the registry answers many
/// hostile requests without reading their bodies.
fn exchange(addr: &str, c: &Case) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", c.method, c.path).into_bytes();
    let framed = c.headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed {
        head.extend(format!("Content-Length: {}\r\n", c.body.len()).bytes());
    }
    for (k, v) in &c.headers {
        head.extend(format!("{k}: {v}\r\n").bytes());
    }
    head.extend(b"Connection: close\r\n\r\n");
    let mut writer = stream.try_clone().expect("clone socket");
    let body = c.body.clone();
    let write = std::thread::spawn(move || {
        // The server may answer and close before taking the whole body.
        let _ = writer
            .write_all(&head)
            .and_then(|()| writer.write_all(&body));
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the response arrived (unread body): keep what we
            // have; a missing response fails the parse below.
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let _ = write.join();
    parse_reply(&buf).unwrap_or_else(|| {
        panic!(
            "{}: no complete HTTP response: {:?}",
            c.label(),
            String::from_utf8_lossy(&buf[..buf.len().min(300)])
        )
    })
}

fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Sends a case and checks the reply against what it wants.
fn run(addr: &str, c: &Case) -> Reply {
    let r = exchange(addr, c);
    let label = c.label();
    let text = String::from_utf8_lossy(&r.body[..r.body.len().min(500)]).into_owned();
    assert!(r.status < 500, "{label}: server error {}: {text}", r.status);
    match c.want {
        Want::Error(status, code) => {
            assert_eq!(r.status, status, "{label}: status; body: {text}");
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0"),
                "{label}: not answered by the registry"
            );
            assert!(
                r.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json")),
                "{label}: error without a JSON content type: {:?}",
                r.headers
            );
            let v: Value = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{label}: error body is not JSON ({e}): {text}"));
            let errors = v["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{label}: no `errors` array: {text}"));
            assert!(!errors.is_empty(), "{label}: empty `errors`");
            assert_eq!(errors[0]["code"], code, "{label}: error code; body: {text}");
            assert!(
                errors[0]["message"].is_string(),
                "{label}: no message: {text}"
            );
        }
        Want::Status(status) => {
            assert_eq!(r.status, status, "{label}: status; body: {text}");
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0"),
                "{label}: not answered by the registry"
            );
        }
        Want::Framing => {
            assert!(
                (400..500).contains(&r.status),
                "{label}: the HTTP layer should refuse this, got {}: {text}",
                r.status
            );
        }
    }
    r
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

fn hex64(c: char) -> String {
    c.to_string().repeat(64)
}

/// A syntactically valid digest nothing holds.
fn some_digest() -> String {
    format!("sha256:{}", hex64('a'))
}

/// Digests the grammar must refuse, as they would appear in a URL.
fn bad_digests() -> Vec<String> {
    let hex = hex64('e');
    vec![
        "md5:d41d8cd98f00b204e9800998ecf8427e".into(),
        format!("sha512:{hex}{hex}"),
        format!("sha256+b64:{hex}"),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha256:{}", hex64('g')),
        format!("sha256:{}z", &hex[1..]),
        format!("SHA256:{hex}"),
        format!("sha256:{hex}%00"),
        format!("sha256:%00{}", &hex[1..]),
        "sha256:".into(),
        "sha256".into(),
        format!(":{hex}"),
        format!("sha256::{hex}"),
        format!("sha256:{}", "0".repeat(5000)),
        format!("sha256:{}%C3%A4", &hex[2..]),
    ]
}

/// Repository names the grammar must refuse, as path segments.
fn bad_names() -> Vec<String> {
    vec![
        "../x".into(),
        "x/..".into(),
        "x/../y".into(),
        "./x".into(),
        "%2e%2e/x".into(),
        "%2E%2E%2Fx".into(),
        "A/b".into(),
        "a/B".into(),
        "a".repeat(300),
        "a".repeat(256),
        format!("{}/{}", "a".repeat(200), "b".repeat(100)),
        "a//b".into(),
        "a/".into(),
        "a_".into(),
        "a___b".into(),
        "a._b".into(),
        "-a".into(),
        "a%20b".into(),
        "a%00b".into(),
        "a%0Ab".into(),
        "%C3%A4".into(),
        "\u{e4}".into(),
        "a%3Ab".into(),
    ]
}

/// Tags the grammar must refuse.
fn bad_tags() -> Vec<String> {
    vec![
        "t".repeat(129),
        "t".repeat(5000),
        ".x".into(),
        "-x".into(),
        "a+b".into(),
        "a%20b".into(),
        "a%00".into(),
        "%C3%A4".into(),
        "a@b".into(),
        "a%2Cb".into(),
    ]
}

/// A well-formed OCI image manifest over blobs nobody pushed.
fn image(config: &str, layers: &[&str]) -> Value {
    layers
        .iter()
        .fold(Manifest::image(config, 2), |m, d| {
            m.layer_descriptor(desc(OCI_LAYER, d, 3))
        })
        .json()
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// `image` with one top-level field replaced.
fn image_with(field: &str, value: Value) -> Vec<u8> {
    let mut v = image(&some_digest(), &[]);
    v[field] = value;
    bytes(&v)
}

/// `body` as one HTTP/1.1 chunk plus the terminator.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

// ---------------------------------------------------------------------------
// The stateless corpus: nothing in it may create anything.
// ---------------------------------------------------------------------------

fn stateless_corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let d = some_digest();
    let valid_manifest = bytes(&image(&d, &[]));

    // Repository names, on every endpoint that takes one, reads and writes.
    for name in bad_names() {
        let err = |c: Case| c.error(400, "NAME_INVALID");
        cases.extend([
            err(case("GET", format!("/v2/{name}/tags/list"))),
            err(case("GET", format!("/v2/{name}/manifests/latest"))),
            err(case("DELETE", format!("/v2/{name}/manifests/{d}"))),
            err(case("PUT", format!("/v2/{name}/manifests/latest"))
                .manifest(OCI_MANIFEST, valid_manifest.clone())),
            err(case("GET", format!("/v2/{name}/blobs/{d}"))),
            err(case("DELETE", format!("/v2/{name}/blobs/{d}"))),
            err(case("POST", format!("/v2/{name}/blobs/uploads/"))),
            err(case(
                "POST",
                format!("/v2/{name}/blobs/uploads/?digest={}", sha256_digest(b"abc")),
            )
            .body("abc")),
            err(case(
                "POST",
                format!("/v2/{name}/blobs/uploads/?mount={d}&from=library/x"),
            )),
            err(case("PATCH", format!("/v2/{name}/blobs/uploads/some-id")).body("abc")),
            err(case("GET", format!("/v2/{name}/referrers/{d}"))),
        ]);
    }
    // Empty names, and names that cannot even be decoded.
    cases.extend([
        case("GET", "/v2//tags/list").error(400, "NAME_INVALID"),
        case("POST", "/v2//blobs/uploads/").error(400, "NAME_INVALID"),
        case("GET", "/v2/a%zz/tags/list").error(404, "UNSUPPORTED"),
        case("GET", "/v2/a%/tags/list").error(404, "UNSUPPORTED"),
        case("GET", "/v2/a%ff/tags/list").error(404, "UNSUPPORTED"),
        case("POST", "/v2/a%C3/blobs/uploads/").error(404, "UNSUPPORTED"),
    ]);
    // Boundaries that are valid: unknown, not invalid.
    cases.extend([
        case("GET", format!("/v2/{}/tags/list", "a".repeat(255))).error(404, "NAME_UNKNOWN"),
        case("GET", format!("/v2/{REPO}/manifests/{}", "t".repeat(128))).error(404, "NAME_UNKNOWN"),
        case("GET", format!("/v2/{REPO}/blobs/{d}")).error(404, "BLOB_UNKNOWN"),
    ]);

    // Digests: in blob paths, manifest references, referrers, and queries.
    for bad in bad_digests() {
        let err = |c: Case| c.error(400, "DIGEST_INVALID");
        cases.extend([
            err(case("GET", format!("/v2/{REPO}/blobs/{bad}"))),
            err(case("DELETE", format!("/v2/{REPO}/blobs/{bad}"))),
            err(case("GET", format!("/v2/{REPO}/referrers/{bad}"))),
            err(case("POST", format!("/v2/{REPO}/blobs/uploads/?digest={bad}")).body("abc")),
            err(case(
                "POST",
                format!("/v2/{REPO}/blobs/uploads/?mount={bad}&from=other"),
            )),
        ]);
        // Without a colon a reference is a tag, not a digest.
        if bad.contains(':') {
            cases.extend([
                err(case("GET", format!("/v2/{REPO}/manifests/{bad}"))),
                err(case("DELETE", format!("/v2/{REPO}/manifests/{bad}"))),
                err(case("PUT", format!("/v2/{REPO}/manifests/{bad}"))
                    .manifest(OCI_MANIFEST, valid_manifest.clone())),
            ]);
        }
    }
    cases.extend([
        // Monolithic upload whose content does not match its digest.
        case(
            "POST",
            format!(
                "/v2/{REPO}/blobs/uploads/?digest={}",
                sha256_digest(b"other")
            ),
        )
        .body("abc")
        .error(400, "DIGEST_INVALID"),
        // ... and with an empty body.
        case("POST", format!("/v2/{REPO}/blobs/uploads/?digest={d}")).error(400, "DIGEST_INVALID"),
        case(
            "POST",
            format!("/v2/{REPO}/blobs/uploads/?digest-algorithm=md5"),
        )
        .error(400, "DIGEST_INVALID"),
        // A manifest pushed by a digest it does not hash to.
        case("PUT", format!("/v2/{REPO}/manifests/{d}"))
            .manifest(OCI_MANIFEST, valid_manifest.clone())
            .error(400, "DIGEST_INVALID"),
    ]);

    // Tags.
    for tag in bad_tags() {
        cases.extend([
            // A read of a reference no manifest can have answers as
            // registry:2 does; changes to it stay 400.
            case("GET", format!("/v2/{REPO}/manifests/{tag}")).error(404, "MANIFEST_UNKNOWN"),
            case("DELETE", format!("/v2/{REPO}/manifests/{tag}")).error(400, "MANIFEST_INVALID"),
            case("PUT", format!("/v2/{REPO}/manifests/{tag}"))
                .manifest(OCI_MANIFEST, valid_manifest.clone())
                .error(400, "MANIFEST_INVALID"),
            case(
                "PUT",
                format!(
                    "/v2/{REPO}/manifests/{}?tag={tag}",
                    sha256_digest(&valid_manifest)
                ),
            )
            .manifest(OCI_MANIFEST, valid_manifest.clone())
            .error(400, "MANIFEST_INVALID"),
        ]);
    }
    // A tag with a colon can only be a digest.
    cases.push(case("GET", format!("/v2/{REPO}/manifests/v1:2")).error(400, "DIGEST_INVALID"));

    // Upload ids: unknown, and ones that cannot be ids at all.
    for id in [
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "..".into(),
        ".".into(),
        "a%20b".into(),
        "a%00b".into(),
        "%C3%A4".into(),
        "x".repeat(129),
        "x".repeat(5000),
        "a;b".into(),
    ] {
        let path = format!("/v2/{REPO}/blobs/uploads/{id}");
        let err = |c: Case| c.error(404, "BLOB_UPLOAD_UNKNOWN");
        cases.extend([
            err(case("GET", path.clone())),
            err(case("DELETE", path.clone())),
            err(case("PATCH", path.clone()).body("abcd")),
            err(case("PATCH", path.clone())
                .header("Content-Range", "0-3")
                .body("abcd")),
            err(case("PUT", format!("{path}?digest={}", sha256_digest(b"abcd"))).body("abcd")),
        ]);
    }
    // An id with an encoded slash no longer names an upload endpoint.
    cases.push(case("GET", format!("/v2/{REPO}/blobs/uploads/a%2Fb")).error(404, "UNSUPPORTED"));

    // Manifests: media types.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc(OCI_MANIFEST, &d, 10)
    ]});
    let no_media_type = {
        let mut v = image(&d, &[]);
        v.as_object_mut().map(|o| o.remove("mediaType"));
        bytes(&v)
    };
    let put = || case("PUT", format!("/v2/{REPO}/manifests/t"));
    let invalid = |c: Case| c.error(400, "MANIFEST_INVALID");
    cases.extend([
        invalid(put().manifest(OCI_INDEX, valid_manifest.clone())),
        invalid(put().manifest(OCI_MANIFEST, bytes(&index))),
        invalid(put().manifest(DOCKER_MANIFEST, valid_manifest.clone())),
        invalid(put().manifest("application/json", valid_manifest.clone())),
        invalid(put().manifest("text/plain", valid_manifest.clone())),
        invalid(put().manifest(OCI_CONFIG, valid_manifest.clone())),
        invalid(put().manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            valid_manifest.clone(),
        )),
        invalid(put().manifest("application/vnd.unknown+json", valid_manifest.clone())),
        invalid(put().manifest(&format!("{OCI_MANIFEST}x"), valid_manifest.clone())),
        invalid(put().body(no_media_type.clone())),
        invalid(put().manifest(DOCKER_MANIFEST, no_media_type)),
        invalid(put().manifest(OCI_MANIFEST, image_with("mediaType", json!(OCI_INDEX)))),
        invalid(put().manifest(OCI_MANIFEST, image_with("mediaType", json!(7)))),
    ]);
    // Manifests: not JSON, or not the schema.
    let mut deep_arrays = "[".repeat(100_000);
    deep_arrays.push_str(&"]".repeat(100_000));
    let deep_objects = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);
    // `valid_manifest` with one more field holding `value`.
    let with_field = |field: &str, value: &str| {
        let mut s = String::from_utf8(valid_manifest.clone()).expect("UTF-8");
        s.pop();
        format!(r#"{s},"{field}":{value}}}"#).into_bytes()
    };
    let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
    for body in [
        Vec::new(),
        b"not json".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"manifest\"".to_vec(),
        b"{}".to_vec(),
        valid_manifest[..valid_manifest.len() / 2].to_vec(),
        [b"\xef\xbb\xbf".as_slice(), &valid_manifest].concat(),
        b"\xff\xfe{\x00}".to_vec(),
        deep_arrays.into_bytes(),
        deep_objects.into_bytes(),
        with_field("annotations", &deep(50_000)),
        with_field("annotations", &format!(r#"{{"a":{}}}"#, deep(50_000))),
        with_field("x", &("[".repeat(50_000) + "}")),
        // The same fields as a manifest, but as an array, not an object.
        json!([2, OCI_MANIFEST, null, desc(OCI_CONFIG, &d, 2), [], null, null, null])
            .to_string()
            .into_bytes(),
        image_with("config", json!([OCI_CONFIG, d, 2])),
        image_with("schemaVersion", json!(1)),
        image_with("schemaVersion", json!("2")),
        image_with("schemaVersion", json!(2.5)),
        image_with("schemaVersion", Value::Null),
        image_with("config", Value::Null),
        image_with("config", json!("sha256:x")),
        image_with("config", desc(OCI_CONFIG, "sha256:not/hex", 1)),
        image_with("config", json!({"mediaType": OCI_CONFIG, "digest": d})),
        image_with("config", json!({"mediaType": OCI_CONFIG, "digest": d, "size": -1})),
        image_with("config", json!({"mediaType": OCI_CONFIG, "digest": d, "size": 1.5})),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{d}","size":{U64_OVER}}},"layers":[]}}"#
        )
        .into_bytes(),
        image_with("layers", json!({})),
        image_with("layers", Value::Null),
        image_with("manifests", json!([])),
        image_with("annotations", json!({"a": 1})),
        image_with("subject", desc(OCI_MANIFEST, "bad", 1)),
        // Duplicate keys: JSON parsers disagree on which wins, so refuse.
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"config":{},"layers":[]}}"#,
            desc(OCI_CONFIG, &d, 2),
            desc(OCI_CONFIG, &sha256_digest(b"other"), 2)
        )
        .into_bytes(),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "layers": []})
            .to_string()
            .into_bytes(),
    ] {
        cases.push(invalid(put().manifest(OCI_MANIFEST, body.clone())));
    }
    cases.push(invalid(put().manifest(
        OCI_INDEX,
        bytes(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX
        })),
    )));

    // Manifests: size. The limit is 4 MiB; one byte over it is refused whether
    // declared up front, streamed without a length, or only claimed.
    let limit = 4usize << 20;
    let padded = |len: usize| {
        let mut v = image(&d, &[]);
        v["annotations"] = json!({"pad": ""});
        let base = bytes(&v).len();
        v["annotations"]["pad"] = json!("p".repeat(len - base));
        let b = bytes(&v);
        assert_eq!(b.len(), len);
        b
    };
    let too_large = |c: Case| c.error(413, "SIZE_INVALID");
    cases.extend([
        too_large(put().manifest(OCI_MANIFEST, padded(5 << 20))),
        too_large(put().manifest(OCI_MANIFEST, padded(limit + 1))),
        too_large(
            put()
                .manifest(OCI_MANIFEST, chunked(&padded(5 << 20)))
                .header("Transfer-Encoding", "chunked"),
        ),
        too_large(
            put()
                .manifest(OCI_MANIFEST, valid_manifest.clone())
                .header("Content-Length", "18446744073709551613"),
        ),
    ]);
    // Exactly at the limit is read and judged on its content (it references
    // a blob nobody pushed).
    cases.push(
        put()
            .manifest(OCI_MANIFEST, padded(limit))
            .error(400, "MANIFEST_BLOB_UNKNOWN"),
    );
    // Lengths no HTTP implementation can frame a body with.
    for length in [
        U64_MAX,
        U64_OVER,
        "-1",
        "1, 2",
        "0x10",
        "99999999999999999999999",
    ] {
        cases.push(
            put()
                .manifest(OCI_MANIFEST, "{}")
                .header("Content-Length", length)
                .framing(),
        );
    }

    // Manifests referencing content this repository does not hold.
    let unknown = |c: Case| c.error(400, "MANIFEST_BLOB_UNKNOWN");
    cases.extend([
        // Deep nesting in a field nobody reads is still valid JSON.
        unknown(put().manifest(OCI_MANIFEST, with_field("x", &deep(50_000)))),
        unknown(put().manifest(OCI_MANIFEST, valid_manifest.clone())),
        unknown(put().manifest(OCI_MANIFEST, bytes(&image(&d, &[&sha256_digest(b"layer")])))),
        unknown(put().manifest(OCI_INDEX, bytes(&index))),
        unknown(put().manifest(
            OCI_MANIFEST,
            bytes(&image(&format!("sha512:{}", "c".repeat(128)), &[])),
        )),
        unknown(
            case(
                "PUT",
                format!("/v2/{REPO}/manifests/{}", sha256_digest(&valid_manifest)),
            )
            .manifest(OCI_MANIFEST, valid_manifest.clone()),
        ),
    ]);

    // Unknown things that are well-formed.
    cases.extend([
        case("GET", format!("/v2/{REPO}/manifests/latest")).error(404, "NAME_UNKNOWN"),
        case("DELETE", format!("/v2/{REPO}/manifests/{d}")).error(404, "NAME_UNKNOWN"),
        case("GET", format!("/v2/{REPO}/tags/list")).error(404, "NAME_UNKNOWN"),
        case("DELETE", format!("/v2/{REPO}/blobs/{d}")).error(404, "BLOB_UNKNOWN"),
    ]);

    // Pagination parameters.
    for n in ["-1", "abc", "1e3", "+1", "%201", "%00"] {
        cases.push(case("GET", format!("/v2/_catalog?n={n}")).error(400, "UNSUPPORTED"));
    }
    cases.extend([
        case("GET", format!("/v2/_catalog?n={U64_OVER}")).status(200),
        case("GET", "/v2/_catalog?last=%ff&n=%zz").status(200),
    ]);

    // Methods and routes.
    cases.extend([
        case("TRACE", "/v2/").error(405, "UNSUPPORTED"),
        case("BREW", format!("/v2/{REPO}/manifests/t")).error(405, "UNSUPPORTED"),
        case("POST", format!("/v2/{REPO}/manifests/t")).error(405, "UNSUPPORTED"),
        case("PUT", format!("/v2/{REPO}/blobs/{d}")).error(405, "UNSUPPORTED"),
        case("GET", "/v2/x/nonsense/y").error(404, "UNSUPPORTED"),
        case("GET", "/v2/_catalog/x").error(404, "UNSUPPORTED"),
    ]);

    cases
}

// ---------------------------------------------------------------------------
// The session corpus: against one fixture blob and fresh upload sessions.
// ---------------------------------------------------------------------------

const FIXTURE_REPO: &str = "fixture";
const FIXTURE: &[u8] = b"0123456789abcdefghij"; // 20 bytes

fn session_corpus(blob: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let path = format!("/v2/{FIXTURE_REPO}/blobs/{blob}");

    // Range on a blob GET: syntax the header grammar does not allow is
    // ignored (the whole blob, 200); well-formed ranges that select nothing
    // are 416.
    let get = |range: &str| case("GET", path.clone()).header("Range", range.to_owned());
    for ignored in [
        "bytes=abc",
        "bytes=-",
        "bytes=",
        "bytes",
        "bytes=0-1,3-4",
        "bytes=0-1, 3-4",
        "bytes=--1",
        "bytes=-1-2",
        "bytes=+1-2",
        "bytes=1--2",
        "items=0-1",
        "0-1",
        "bytes=0x0-0x1",
        "bytes=\u{bd}-1",
    ] {
        cases.push(get(ignored).status(200));
    }
    for overflowing in [
        format!("bytes=0-{U64_OVER}"),
        format!("bytes={U64_OVER}-"),
        format!("bytes=-{U64_OVER}"),
        format!("bytes=0-{}", "9".repeat(1000)),
    ] {
        cases.push(get(&overflowing).status(200));
    }
    for unsatisfiable in [
        "bytes=5-1".to_owned(),
        "bytes=20-".into(),
        "bytes=20-20".into(),
        "bytes=-0".into(),
        format!("bytes={U64_MAX}-"),
        format!("bytes={U64_MAX}-{U64_MAX}"),
    ] {
        cases.push(get(&unsatisfiable).error(416, "UNSUPPORTED"));
    }
    cases.extend([
        get(&format!("bytes=0-{U64_MAX}")).status(206),
        get(&format!("bytes=-{U64_MAX}")).status(206),
        get("bytes=19-19").status(206),
    ]);

    // Content-Range on chunk uploads: garbage, overflow, inverted, out of
    // order, or disagreeing with the body's length are all 416.
    let out_of_order = |c: Case| c.error(416, "BLOB_UPLOAD_INVALID");
    let patch = |session: &str, range: &str| {
        case("PATCH", session.to_owned())
            .header("Content-Range", range.to_owned())
            .body("abcd")
    };
    for range in [
        "bytes=abc".to_owned(),
        "abc".into(),
        "-".into(),
        "".into(),
        "5-1".into(),
        "3-0".into(),
        "0-3,4-7".into(),
        "-1-3".into(),
        "0--3".into(),
        "+0-3".into(),
        "0-3-".into(),
        "0-2".into(),
        "0-4".into(),
        "4-7".into(),
        format!("0-{U64_OVER}"),
        format!("{U64_OVER}-{U64_OVER}"),
        format!("0-{U64_MAX}"),
        format!("{U64_MAX}-{U64_MAX}"),
        format!("0-{}", "9".repeat(1000)),
    ] {
        cases.push(out_of_order(patch("{session}", &range)));
    }
    // An empty chunk claiming the whole 2^64-byte range: end - start + 1
    // wraps to 0, which must not pass for "matches Content-Length: 0".
    cases.push(out_of_order(
        case("PATCH", "{session}")
            .header("Content-Range", format!("0-{U64_MAX}"))
            .header("Content-Length", "0"),
    ));
    // A huge claimed length that disagrees with the range: refused before
    // any byte is read.
    cases.push(out_of_order(
        case("PATCH", "{session}")
            .header("Content-Range", "0-3")
            .header("Content-Length", "18446744073709551613")
            .body("abcd"),
    ));
    for range in ["0-3", "2-5", "8-11", "5-8"] {
        cases.push(out_of_order(patch("{session4}", range)));
    }
    // The final chunk out of order.
    let digest_of_8 = sha256_digest(b"abcdabcd");
    cases.push(out_of_order(
        case("PUT", format!("{{session4}}?digest={digest_of_8}"))
            .header("Content-Range", "0-3")
            .body("abcd"),
    ));

    // Digest mismatches on chunked uploads: the session is discarded.
    let mismatch = |c: Case| c.error(400, "DIGEST_INVALID");
    cases.extend([
        mismatch(case(
            "PUT",
            format!("{{session4}}?digest={}", sha256_digest(b"other")),
        )),
        mismatch(
            case(
                "PUT",
                format!("{{session4}}?digest={}", sha256_digest(b"abcd")),
            )
            .header("Content-Range", "4-7")
            .body("efgh"),
        ),
        mismatch(case("PUT", format!("{{session}}?digest={blob}")).body("not the fixture")),
        mismatch(case("PUT", "{session4}")),
        mismatch(case("PUT", "{session4}?digest=")),
    ]);
    for bad in bad_digests() {
        cases.push(mismatch(case("PUT", format!("{{session4}}?digest={bad}"))));
    }

    // A session addressed through another repository does not exist there.
    let elsewhere = |c: Case| c.error(404, "BLOB_UPLOAD_UNKNOWN");
    cases.extend([
        elsewhere(case("GET", "/v2/other/blobs/uploads/{id}")),
        elsewhere(case("PATCH", "/v2/other/blobs/uploads/{id}").body("abcd")),
        elsewhere(
            case(
                "PUT",
                format!(
                    "/v2/other/blobs/uploads/{{id}}?digest={}",
                    sha256_digest(b"abcd")
                ),
            )
            .body("abcd"),
        ),
        elsewhere(case("DELETE", "/v2/other/blobs/uploads/{id}")),
    ]);

    // Manifests over the fixture blob plus content nobody holds, and the
    // fixture blob from a repository that does not link it.
    let unknown = |c: Case| c.error(400, "MANIFEST_BLOB_UNKNOWN");
    cases.extend([
        unknown(
            case("PUT", format!("/v2/{FIXTURE_REPO}/manifests/t"))
                .manifest(OCI_MANIFEST, bytes(&image(blob, &[&some_digest()]))),
        ),
        unknown(
            case("PUT", format!("/v2/{FIXTURE_REPO}/manifests/t"))
                .manifest(OCI_MANIFEST, bytes(&image(&some_digest(), &[blob]))),
        ),
        unknown(
            case("PUT", "/v2/other/manifests/t")
                .manifest(OCI_MANIFEST, bytes(&image(blob, &[blob]))),
        ),
        unknown(
            case("PUT", format!("/v2/{FIXTURE_REPO}/manifests/t")).manifest(
                OCI_INDEX,
                bytes(
                    &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                        desc(OCI_MANIFEST, blob, 20)
                    ]}),
                ),
            ),
        ),
    ]);
    // The fixture blob is not visible from another repository.
    cases.push(case("GET", format!("/v2/other/blobs/{blob}")).error(404, "BLOB_UNKNOWN"));

    cases
}

/// Opens an upload session in the fixture repository, optionally with some
/// bytes already in it; returns its path.
fn open_session(addr: &str, prefill: &[u8]) -> String {
    let r = exchange(
        addr,
        &case("POST", format!("/v2/{FIXTURE_REPO}/blobs/uploads/")),
    );
    assert_eq!(r.status, 202, "open a session");
    let loc = r.header("location").expect("session location").to_owned();
    if !prefill.is_empty() {
        let r = exchange(
            addr,
            &case("PATCH", loc.clone())
                .header("Content-Range", format!("0-{}", prefill.len() - 1))
                .body(prefill),
        );
        assert_eq!(r.status, 202, "prefill a session");
    }
    loc
}

// ---------------------------------------------------------------------------
// What is left on disk
// ---------------------------------------------------------------------------

/// Every file under `root`, relative, except the compiled-guest cache.
fn files(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            if rel == Path::new(".cache") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The metadata database's own files, present on any root (with the lock
/// files of the processes and collection passes using it, docs/GC.md).
fn is_metadata(rel: &Path) -> bool {
    rel.to_str().is_some_and(|s| {
        (s.starts_with("metadata.db") && !s.contains('/')) || s.starts_with("metadata.db.holders/")
    })
}

fn catalog(addr: &str) -> Vec<String> {
    let r = run(addr, &case("GET", "/v2/_catalog").status(200));
    let v: Value = serde_json::from_slice(&r.body).expect("catalog JSON");
    v["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|s| s.as_str().expect("name").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn stateless_corpus_is_refused_and_stores_nothing() {
    let berth = Berth::start();
    let addr = berth.addr.clone();
    let fresh = files(&berth.root);
    assert!(
        fresh.iter().all(|f| is_metadata(f)),
        "a fresh root holds only metadata files: {fresh:?}"
    );

    let cases = stateless_corpus();
    assert!(cases.len() > 300, "corpus shrank to {}", cases.len());
    for c in &cases {
        run(&addr, c);
    }
    eprintln!("hostile: {} stateless cases", cases.len());

    run(&addr, &case("GET", "/v2/").status(200));
    assert_eq!(catalog(&addr), Vec::<String>::new(), "catalog after corpus");
    let left: Vec<_> = files(&berth.root)
        .into_iter()
        .filter(|f| !is_metadata(f))
        .collect();
    assert!(left.is_empty(), "files left by refused requests: {left:?}");
    // The blob store and upload area still exist, empty.
    for dir in ["blobs", "uploads"] {
        assert!(berth.root.join(dir).is_dir(), "{dir}/ is gone");
    }
}

#[test]
fn session_corpus_is_refused_and_stores_nothing() {
    let berth = Berth::start();
    let addr = berth.addr.clone();
    let blob = sha256_digest(FIXTURE);
    let r = run(
        &addr,
        &case(
            "POST",
            format!("/v2/{FIXTURE_REPO}/blobs/uploads/?digest={blob}"),
        )
        .body(FIXTURE)
        .status(201),
    );
    assert_eq!(r.header("docker-content-digest"), Some(blob.as_str()));
    let before = files(&berth.root);

    let cases = session_corpus(&blob);
    for c in &cases {
        // Each case gets a fresh session, discarded afterwards whatever the
        // case did to it (cancelling one the case already ended is a 404).
        let wants_session = ["{session}", "{session4}", "{id}"]
            .iter()
            .any(|p| c.path.contains(p));
        let session = wants_session.then(|| {
            open_session(
                &addr,
                if c.path.contains("{session4}") {
                    b"abcd"
                } else {
                    b""
                },
            )
        });
        let mut c = c.clone();
        if let Some(loc) = &session {
            let id = loc.rsplit('/').next().expect("session id");
            c.path = c
                .path
                .replace("{session4}", loc)
                .replace("{session}", loc)
                .replace("{id}", id);
        }
        run(&addr, &c);
        if let Some(loc) = session {
            let r = exchange(&addr, &case("DELETE", loc));
            assert!(
                matches!(r.status, 204 | 404),
                "{}: cancelling its session: {}",
                c.label(),
                r.status
            );
        }
    }
    eprintln!("hostile: {} session cases", cases.len());

    run(&addr, &case("GET", "/v2/").status(200));
    // The fixture holds a blob and no manifest, so the catalog (which
    // lists a repository once it holds a manifest) stays empty: no hostile
    // session named a repository into it.
    assert!(catalog(&addr).is_empty(), "catalog after corpus");
    let tags = run(
        &addr,
        &case("GET", format!("/v2/{FIXTURE_REPO}/tags/list")).status(200),
    );
    let tags: Value = serde_json::from_slice(&tags.body).expect("tags JSON");
    assert_eq!(tags["tags"], json!([]), "no manifest was tagged");
    // Exactly the fixture blob, and no upload scratch.
    let hex = blob.trim_start_matches("sha256:");
    let blob_file = PathBuf::from(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    assert!(before.contains(&blob_file), "fixture layout: {before:?}");
    let left: Vec<_> = files(&berth.root)
        .into_iter()
        .filter(|f| !is_metadata(f))
        .collect();
    assert_eq!(left, [blob_file], "files after the session corpus");
    // The fixture is intact.
    let r = run(
        &addr,
        &case("GET", format!("/v2/{FIXTURE_REPO}/blobs/{blob}")).status(200),
    );
    assert_eq!(r.body, FIXTURE);
}
