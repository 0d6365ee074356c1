//! End-to-end tests of Berth's OCI distribution HTTP API (distribution-spec
//! v1.1): every endpoint, its success paths and its error paths, driven over
//! real HTTP against the `berth` binary.
//!
//! Every test starts its own server on a fresh root, so tests can run in
//! parallel and can make exact assertions (e.g. on the catalog).

mod common;

use common::{Berth, sha256_digest};
use reqwest::Method;
use reqwest::blocking::{Body, Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

/// A fully read response.
struct Resp {
    what: String,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or_else(|_| panic!("{}: header {name} is not ASCII", self.what))
        })
    }

    fn must_header(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| {
            panic!(
                "{} → {}: missing header {name}; headers: {:?}",
                self.what, self.status, self.headers
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {:?}", self.what, self.text()))
    }

    /// Asserts the status code, showing the body when it differs.
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        self
    }

    fn expect_header(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "{} → {}: header {name}",
            self.what,
            self.status
        );
        self
    }

    fn content_length(&self) -> u64 {
        self.must_header("content-length")
            .parse()
            .expect("numeric Content-Length")
    }
}

/// A running server plus an HTTP client that does not follow redirects.
struct Reg {
    berth: Berth,
    client: Client,
}

impl Reg {
    fn start() -> Self {
        let berth = Berth::start();
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        Reg { berth, client }
    }

    /// Turns a path or a (possibly relative) Location into a full URL.
    fn abs(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            assert!(loc.starts_with('/'), "not an absolute path or URL: {loc:?}");
            format!("{}{}", self.berth.url(), loc)
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.abs(path))
    }

    /// Sends a request, reads the whole response and checks the header that
    /// every response of the registry must carry.
    fn send(&self, rb: RequestBuilder) -> Resp {
        let req = rb.build().expect("build request");
        let what = format!("{} {}", req.method(), req.url());
        let resp = self
            .client
            .execute(req)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .unwrap_or_else(|e| panic!("{what}: reading body: {e}"))
            .to_vec();
        let r = Resp {
            what,
            status,
            headers,
            body,
        };
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{} → {}: Docker-Distribution-API-Version; body: {}",
            r.what,
            r.status,
            r.text()
        );
        r
    }

    fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path))
    }

    fn head(&self, path: &str) -> Resp {
        self.send(self.request(Method::HEAD, path))
    }

    fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path))
    }

    fn get_range(&self, path: &str, range: &str) -> Resp {
        self.send(self.request(Method::GET, path).header("Range", range))
    }

    fn post(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.request(Method::POST, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    fn put(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.request(Method::PUT, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    /// A chunk upload: with `range` it is a spec chunk (`Content-Range: a-b`),
    /// without it a plain append.
    fn patch(&self, path: &str, range: Option<&str>, body: Vec<u8>) -> Resp {
        let mut rb = self
            .request(Method::PATCH, path)
            .header("Content-Type", "application/octet-stream");
        if let Some(range) = range {
            rb = rb.header("Content-Range", range);
        }
        self.send(rb.body(body))
    }

    /// A PATCH whose body has no Content-Length (chunked transfer encoding),
    /// as docker streams layers.
    fn patch_streamed(&self, path: &str, body: Vec<u8>) -> Resp {
        let body = Body::new(std::io::Cursor::new(body));
        self.send(
            self.request(Method::PATCH, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    /// The registry still answers the base endpoint.
    fn alive(&self) {
        self.get("/v2/").expect(200);
    }
}

/// A raw HTTP/1.1 exchange, for paths an HTTP client library would normalise
/// (`..`, `//`). Returns status, lower-cased headers and (de-chunked) body.
fn raw_request(addr: &str, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read raw response");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (status, headers, body)
}

// ---------------------------------------------------------------------------
// Protocol helpers
// ---------------------------------------------------------------------------

/// Checks the spec's error body shape and returns the first error's code.
fn error_code(r: &Resp) -> String {
    let v = r.json();
    let errors = v["errors"].as_array().unwrap_or_else(|| {
        panic!(
            "{}: error body without an `errors` array: {}",
            r.what,
            r.text()
        )
    });
    assert!(!errors.is_empty(), "{}: empty `errors` array", r.what);
    for e in errors {
        let code = e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: error without string `code`: {e}", r.what));
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{}: error code {code:?} is not uppercase letters and underscores",
            r.what
        );
    }
    errors[0]["code"].as_str().unwrap().to_string()
}

/// Asserts an error response: status and spec error code.
fn expect_error(r: &Resp, status: u16, code: &str) {
    r.expect(status);
    assert_eq!(
        error_code(r),
        code,
        "{}: error code; body: {}",
        r.what,
        r.text()
    );
}

/// Deterministic pseudo-random bytes.
fn data(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        x = (x ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    x |= 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Appends a query parameter to an upload location that may already have one.
fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

/// Monolithic single-POST upload; asserts 201 with Location and digest.
fn push_blob(reg: &Reg, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let r = reg.post(
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        bytes.to_vec(),
    );
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    r.must_header("location");
    digest
}

/// `POST /v2/<repo>/blobs/uploads/` → 202; returns the upload Location.
fn start_upload(reg: &Reg, repo: &str) -> String {
    let r = reg.post(&format!("/v2/{repo}/blobs/uploads/"), Vec::new());
    r.expect(202);
    let loc = r.must_header("location").to_string();
    assert!(
        reg.abs(&loc)
            .contains(&format!("/v2/{repo}/blobs/uploads/")),
        "upload Location {loc:?} is not under /v2/{repo}/blobs/uploads/"
    );
    loc
}

/// Closes an upload with `PUT <loc>?digest=` and checks the 201 response.
fn finish_upload(reg: &Reg, loc: &str, digest: &str, body: Vec<u8>) {
    let r = reg.put(&with_query(loc, &format!("digest={digest}")), body);
    r.expect(201).expect_header("docker-content-digest", digest);
    r.must_header("location");
}

/// GET and HEAD of a blob return exactly `bytes` with the right headers.
fn assert_blob(reg: &Reg, repo: &str, bytes: &[u8]) {
    let digest = sha256_digest(bytes);
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = reg.get(&path);
    r.expect(200)
        .expect_header("docker-content-digest", &digest);
    assert_eq!(
        r.content_length(),
        bytes.len() as u64,
        "{}: Content-Length",
        r.what
    );
    assert!(
        r.body == bytes,
        "{}: body differs ({} bytes vs {} expected)",
        r.what,
        r.body.len(),
        bytes.len()
    );
    let h = reg.head(&path);
    h.expect(200)
        .expect_header("docker-content-digest", &digest);
    assert_eq!(
        h.content_length(),
        bytes.len() as u64,
        "{}: Content-Length",
        h.what
    );
    assert!(h.body.is_empty(), "{}: HEAD has a body", h.what);
}

/// GET → 404 BLOB_UNKNOWN and HEAD → 404.
fn assert_no_blob(reg: &Reg, repo: &str, digest: &str) {
    let path = format!("/v2/{repo}/blobs/{digest}");
    expect_error(&reg.get(&path), 404, "BLOB_UNKNOWN");
    reg.head(&path).expect(404);
}

/// A descriptor as non-canonical JSON text.
fn desc(media_type: &str, digest: &str, size: usize) -> String {
    format!(
        "{{ \"mediaType\" :\"{media_type}\",\n      \"digest\":  \"{digest}\", \"size\" : {size} }}"
    )
}

/// An image manifest as non-canonical JSON (odd spacing, tabs, CRLF) so a
/// byte-exact round trip proves the registry does not re-serialise.
fn image_manifest(media_type: &str, config: &str, layers: &[String], extra: &str) -> Vec<u8> {
    format!(
        "{{\n  \"schemaVersion\":   2,\r\n\t\"mediaType\" : \"{media_type}\",\n  \"config\": {config},\n  \"layers\" : [ {} ]{extra}\n}}\n",
        layers.join(" ,\n    ")
    )
    .into_bytes()
}

/// An index / manifest list as non-canonical JSON.
fn index_manifest(media_type: &str, children: &[String], extra: &str) -> Vec<u8> {
    format!(
        "{{ \"schemaVersion\" : 2 ,\"mediaType\":\"{media_type}\",\n\n  \"manifests\":[\n {}\n ]{extra}   }}",
        children.join(",\n ")
    )
    .into_bytes()
}

/// A child descriptor with a platform, for indexes and manifest lists.
fn platform_desc(media_type: &str, digest: &str, size: usize, arch: &str) -> String {
    format!(
        "{{\"mediaType\":\"{media_type}\",\"digest\":\"{digest}\",\"size\":{size},\n   \"platform\" : {{ \"architecture\":\"{arch}\", \"os\" : \"linux\" }} }}"
    )
}

/// Pushes a config and one layer into `repo` and returns the manifest bytes
/// (not pushed) of an OCI image, or a Docker schema2 image when `docker`.
fn image(reg: &Reg, repo: &str, seed: &str, docker: bool) -> Vec<u8> {
    let (mt, cmt, lmt) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
    } else {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    };
    let config =
        format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}").into_bytes();
    let layer = data(seed, 1500);
    let cd = push_blob(reg, repo, &config);
    let ld = push_blob(reg, repo, &layer);
    image_manifest(
        mt,
        &desc(cmt, &cd, config.len()),
        &[desc(lmt, &ld, layer.len())],
        "",
    )
}

fn put_manifest(reg: &Reg, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Resp {
    reg.send(
        reg.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(bytes.to_vec()),
    )
}

/// Pushes a manifest, asserts 201 with Location and Docker-Content-Digest,
/// and returns its digest.
fn push_manifest(reg: &Reg, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let r = put_manifest(reg, repo, reference, media_type, bytes);
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    r.must_header("location");
    digest
}

fn get_manifest(reg: &Reg, method: Method, repo: &str, reference: &str) -> Resp {
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    reg.send(
        reg.request(method, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", accept),
    )
}

/// GET and HEAD of a manifest return exactly `bytes` with its media type.
fn assert_manifest(reg: &Reg, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let digest = sha256_digest(bytes);
    let r = get_manifest(reg, Method::GET, repo, reference);
    r.expect(200)
        .expect_header("content-type", media_type)
        .expect_header("docker-content-digest", &digest);
    assert_eq!(
        r.text(),
        String::from_utf8_lossy(bytes),
        "{}: manifest bytes",
        r.what
    );
    assert_eq!(
        r.content_length(),
        bytes.len() as u64,
        "{}: Content-Length",
        r.what
    );
    let h = get_manifest(reg, Method::HEAD, repo, reference);
    h.expect(200)
        .expect_header("content-type", media_type)
        .expect_header("docker-content-digest", &digest);
    assert_eq!(
        h.content_length(),
        bytes.len() as u64,
        "{}: Content-Length",
        h.what
    );
    assert!(h.body.is_empty(), "{}: HEAD has a body", h.what);
}

/// GET → 404 MANIFEST_UNKNOWN and HEAD → 404.
fn assert_no_manifest(reg: &Reg, repo: &str, reference: &str) {
    expect_error(
        &get_manifest(reg, Method::GET, repo, reference),
        404,
        "MANIFEST_UNKNOWN",
    );
    get_manifest(reg, Method::HEAD, repo, reference).expect(404);
}

/// The target of a `Link: <url>; rel="next"` header, if there is one.
fn next_link(r: &Resp) -> Option<String> {
    let link = r.header("link")?;
    let (url, rest) = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap_or_else(|| panic!("{}: malformed Link header {link:?}", r.what));
    assert_eq!(
        rest.replace(' ', ""),
        ";rel=\"next\"",
        "{}: Link header {link:?}",
        r.what
    );
    Some(url.to_string())
}

fn tags(reg: &Reg, path: &str) -> (Vec<String>, Option<String>) {
    let r = reg.get(path);
    r.expect(200);
    let v = r.json();
    let list = v["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no tags array: {v}", r.what));
    (
        list.iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        next_link(&r),
    )
}

fn catalog(reg: &Reg, path: &str) -> (Vec<String>, Option<String>) {
    let r = reg.get(path);
    r.expect(200);
    let v = r.json();
    let list = v["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no repositories array: {v}", r.what));
    (
        list.iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        next_link(&r),
    )
}

// ---------------------------------------------------------------------------
// Base endpoint, error format, routing
// ---------------------------------------------------------------------------

#[test]
fn base_endpoint_answers_200() {
    let reg = Reg::start();
    reg.get("/v2/").expect(200);
    reg.head("/v2/").expect(200);
}

#[test]
fn error_bodies_have_spec_shape() {
    let reg = Reg::start();
    let unknown = sha256_digest(b"nothing here");
    push_blob(&reg, "shape", b"x");
    let cases = [
        format!("/v2/shape/blobs/{unknown}"),
        "/v2/shape/manifests/nope".to_string(),
        "/v2/never-pushed/tags/list".to_string(),
        "/v2/shape/blobs/uploads/00000000-0000-4000-8000-000000000000".to_string(),
    ];
    for path in &cases {
        let r = reg.get(path);
        assert!(
            (400..500).contains(&r.status),
            "{}: expected a 4xx, got {}",
            r.what,
            r.status
        );
        let ct = r.must_header("content-type");
        assert!(
            ct.starts_with("application/json"),
            "{}: error Content-Type {ct:?}",
            r.what
        );
        error_code(&r);
        for e in r.json()["errors"].as_array().unwrap() {
            assert!(
                e["message"].is_string(),
                "{}: error without string `message`: {e}",
                r.what
            );
            assert!(
                e.get("detail").is_some(),
                "{}: error without `detail`: {e}",
                r.what
            );
        }
    }
}

#[test]
fn wrong_methods_get_405() {
    let reg = Reg::start();
    let d = push_blob(&reg, "methods", b"method test");
    let m = image(&reg, "methods", "m", false);
    push_manifest(&reg, "methods", "v1", OCI_MANIFEST, &m);
    let cases: &[(Method, String)] = &[
        (Method::PUT, "/v2/".into()),
        (Method::DELETE, "/v2/".into()),
        (Method::PUT, format!("/v2/methods/blobs/{d}")),
        (Method::PATCH, format!("/v2/methods/blobs/{d}")),
        (Method::POST, "/v2/methods/manifests/v1".into()),
        (Method::PATCH, "/v2/methods/manifests/v1".into()),
        (Method::DELETE, "/v2/methods/tags/list".into()),
        (Method::POST, "/v2/methods/tags/list".into()),
        (Method::POST, "/v2/_catalog".into()),
        (Method::DELETE, format!("/v2/methods/referrers/{d}")),
    ];
    for (method, path) in cases {
        let r = reg.send(reg.request(method.clone(), path).body(Vec::new()));
        expect_error(&r, 405, "UNSUPPORTED");
        let allow = r.must_header("allow");
        assert!(
            !allow
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(method.as_str())),
            "{}: Allow {allow:?} lists the rejected method",
            r.what
        );
    }
    // Nothing changed.
    assert_blob(&reg, "methods", b"method test");
    assert_manifest(&reg, "methods", "v1", OCI_MANIFEST, &m);
}

#[test]
fn unknown_routes_get_404() {
    let reg = Reg::start();
    for path in ["/v2/repo/nonsense", "/v2/repo/blobs", "/v3/"] {
        reg.get(path).expect(404);
    }
    reg.alive();
}

#[test]
fn server_keeps_serving_after_garbage() {
    let reg = Reg::start();
    push_blob(&reg, "garbage", b"the repository exists");
    let addr = reg.berth.addr.clone();
    // Not HTTP at all.
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"\x00\x01\x02 THIS IS NOT HTTP\r\n\r\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    // A request whose body never arrives in full.
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "PUT /v2/garbage/manifests/t HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 1000\r\n\r\n{{\"schema"
        )
        .unwrap();
    }
    // Broken JSON, an enormous tag, a binary body to the manifest endpoint.
    put_manifest(
        &reg,
        "garbage",
        "t",
        OCI_MANIFEST,
        b"{\"schemaVersion\": 2, \"layers\": [",
    )
    .expect(400);
    put_manifest(&reg, "garbage", &"t".repeat(5000), OCI_MANIFEST, b"{}").expect(400);
    put_manifest(&reg, "garbage", "t", OCI_MANIFEST, &data("bin", 10_000)).expect(400);
    reg.patch(
        "/v2/garbage/blobs/uploads/%00%ff",
        Some("0-3"),
        b"abcd".to_vec(),
    );
    reg.alive();
    assert_no_manifest(&reg, "garbage", "t");
    // And it still does real work.
    push_blob(&reg, "garbage", b"still works");
    assert_blob(&reg, "garbage", b"still works");
}

// ---------------------------------------------------------------------------
// Blob uploads
// ---------------------------------------------------------------------------

#[test]
fn blob_monolithic_single_post() {
    let reg = Reg::start();
    let bytes = data("mono", 4096);
    let digest = sha256_digest(&bytes);
    let r = reg.post(
        &format!("/v2/mono/blobs/uploads/?digest={digest}"),
        bytes.clone(),
    );
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    // The Location is a pullable blob URL.
    let pulled = reg.get(r.must_header("location"));
    pulled.expect(200);
    assert!(pulled.body == bytes, "blob at Location differs");
    assert_blob(&reg, "mono", &bytes);
    // Pushing the same blob again is fine.
    push_blob(&reg, "mono", &bytes);
    assert_blob(&reg, "mono", &bytes);
    // An empty blob is a blob too.
    push_blob(&reg, "mono", b"");
    assert_blob(&reg, "mono", b"");
}

#[test]
fn blob_post_then_put() {
    let reg = Reg::start();
    let bytes = data("post-put", 10_000);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "postput");
    let r = reg.put(
        &with_query(&loc, &format!("digest={digest}")),
        bytes.clone(),
    );
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    let pulled = reg.get(r.must_header("location"));
    pulled.expect(200);
    assert!(pulled.body == bytes, "blob at Location differs");
    assert_blob(&reg, "postput", &bytes);
    // The session is gone once committed.
    expect_error(&reg.get(&loc), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn blob_chunked_patch_with_content_range() {
    let reg = Reg::start();
    let bytes = data("chunked", 3000);
    let digest = sha256_digest(&bytes);
    let mut loc = start_upload(&reg, "chunked");
    for (start, end) in [(0usize, 999usize), (1000, 1999), (2000, 2999)] {
        let r = reg.patch(
            &loc,
            Some(&format!("{start}-{end}")),
            bytes[start..=end].to_vec(),
        );
        r.expect(202).expect_header("range", &format!("0-{end}"));
        loc = r.must_header("location").to_string();
        // The status endpoint agrees.
        reg.get(&loc)
            .expect(204)
            .expect_header("range", &format!("0-{end}"));
    }
    finish_upload(&reg, &loc, &digest, Vec::new());
    assert_blob(&reg, "chunked", &bytes);
}

#[test]
fn blob_chunked_final_chunk_in_put() {
    let reg = Reg::start();
    let bytes = data("final-in-put", 2500);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "finalput");
    let r = reg.patch(&loc, Some("0-1499"), bytes[..1500].to_vec());
    r.expect(202).expect_header("range", "0-1499");
    let loc = r.must_header("location").to_string();
    finish_upload(&reg, &loc, &digest, bytes[1500..].to_vec());
    assert_blob(&reg, "finalput", &bytes);
}

#[test]
fn blob_streamed_patch_without_content_range() {
    let reg = Reg::start();
    // Large enough to span many host stream reads.
    let bytes = data("streamed", 2 * 1024 * 1024 + 12_345);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "library/streamed");
    let r = reg.patch_streamed(&loc, bytes.clone());
    r.expect(202)
        .expect_header("range", &format!("0-{}", bytes.len() - 1));
    let loc = r.must_header("location").to_string();
    finish_upload(&reg, &loc, &digest, Vec::new());
    assert_blob(&reg, "library/streamed", &bytes);
}

#[test]
fn blob_two_plain_patches_append() {
    let reg = Reg::start();
    let bytes = data("two-patches", 70_000);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "twopatch");
    let r = reg.patch(&loc, None, bytes[..30_000].to_vec());
    r.expect(202).expect_header("range", "0-29999");
    let loc = r.must_header("location").to_string();
    let r = reg.patch_streamed(&loc, bytes[30_000..].to_vec());
    r.expect(202).expect_header("range", "0-69999");
    let loc = r.must_header("location").to_string();
    finish_upload(&reg, &loc, &digest, Vec::new());
    assert_blob(&reg, "twopatch", &bytes);
}

#[test]
fn blob_concurrent_uploads_of_one_blob() {
    let reg = Reg::start();
    let bytes = data("concurrent", 600_000);
    let digest = sha256_digest(&bytes);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (reg, bytes, digest) = (&reg, &bytes, &digest);
            s.spawn(move || {
                let repo = format!("conc/r{}", i % 2);
                let mut loc = start_upload(reg, &repo);
                for (n, chunk) in bytes.chunks(100_000).enumerate() {
                    let start = n * 100_000;
                    let end = start + chunk.len() - 1;
                    let r = reg.patch(&loc, Some(&format!("{start}-{end}")), chunk.to_vec());
                    r.expect(202).expect_header("range", &format!("0-{end}"));
                    loc = r.must_header("location").to_string();
                }
                finish_upload(reg, &loc, digest, Vec::new());
            });
        }
    });
    assert_blob(&reg, "conc/r0", &bytes);
    assert_blob(&reg, "conc/r1", &bytes);
}

#[test]
fn blob_out_of_order_patch_is_416() {
    let reg = Reg::start();
    let bytes = b"0123456789".to_vec();
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "ooo");
    let r = reg.patch(&loc, Some("0-4"), bytes[..5].to_vec());
    r.expect(202).expect_header("range", "0-4");
    let loc = r.must_header("location").to_string();
    // A gap.
    let r = reg.patch(&loc, Some("10-14"), b"XXXXX".to_vec());
    r.expect(416).expect_header("range", "0-4");
    // A rewind over bytes already received.
    let r = reg.patch(&loc, Some("0-4"), b"YYYYY".to_vec());
    r.expect(416).expect_header("range", "0-4");
    // Status still shows the valid offset, and the upload goes on.
    let s = reg.get(&loc);
    s.expect(204).expect_header("range", "0-4");
    let r = reg.patch(s.must_header("location"), Some("5-9"), bytes[5..].to_vec());
    r.expect(202).expect_header("range", "0-9");
    finish_upload(&reg, r.must_header("location"), &digest, Vec::new());
    // None of the rejected bytes made it in.
    assert_blob(&reg, "ooo", &bytes);
    reg.alive();
}

#[test]
fn blob_upload_status() {
    let reg = Reg::start();
    let loc = start_upload(&reg, "status/deep");
    let r = reg.patch(&loc, Some("0-99"), data("status", 100));
    r.expect(202);
    let loc = r.must_header("location").to_string();
    let s = reg.get(&loc);
    s.expect(204).expect_header("range", "0-99");
    assert!(s.body.is_empty(), "204 with a body");
    let uuid = s.must_header("docker-upload-uuid");
    assert!(!uuid.is_empty(), "empty Docker-Upload-UUID");
    let status_loc = s.must_header("location");
    assert!(
        status_loc.contains(uuid),
        "Location {status_loc:?} does not name upload {uuid:?}"
    );
    assert!(
        reg.abs(status_loc)
            .contains("/v2/status/deep/blobs/uploads/"),
        "Location {status_loc:?}"
    );
    // The Location from the status response can be used to continue.
    let r = reg.patch(status_loc, Some("100-149"), data("status2", 50));
    r.expect(202).expect_header("range", "0-149");
}

#[test]
fn blob_upload_cancel() {
    let reg = Reg::start();
    let bytes = data("cancel", 64);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "cancel");
    let r = reg.patch(&loc, Some("0-63"), bytes.clone());
    r.expect(202);
    let loc = r.must_header("location").to_string();
    reg.delete(&loc).expect(204);
    expect_error(&reg.get(&loc), 404, "BLOB_UPLOAD_UNKNOWN");
    expect_error(
        &reg.patch(&loc, Some("64-67"), b"more".to_vec()),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    expect_error(
        &reg.put(&with_query(&loc, &format!("digest={digest}")), Vec::new()),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    expect_error(&reg.delete(&loc), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_no_blob(&reg, "cancel", &digest);
}

#[test]
fn blob_unknown_upload_id() {
    let reg = Reg::start();
    push_blob(&reg, "uploads", b"make the repo exist");
    let loc = "/v2/uploads/blobs/uploads/00000000-0000-4000-8000-000000000000";
    expect_error(&reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN");
    expect_error(
        &reg.patch(loc, Some("0-3"), b"abcd".to_vec()),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    let d = sha256_digest(b"abcd");
    expect_error(
        &reg.put(&with_query(loc, &format!("digest={d}")), b"abcd".to_vec()),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    expect_error(&reg.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_no_blob(&reg, "uploads", &d);
}

#[test]
fn blob_put_digest_mismatch_stores_nothing() {
    let reg = Reg::start();
    let bytes = data("mismatch", 500);
    let actual = sha256_digest(&bytes);
    let claimed = sha256_digest(b"something else entirely");

    // POST + PATCH + PUT with the wrong digest.
    let loc = start_upload(&reg, "mismatch");
    let r = reg.patch(&loc, Some("0-499"), bytes.clone());
    r.expect(202);
    let loc = r.must_header("location").to_string();
    expect_error(
        &reg.put(&with_query(&loc, &format!("digest={claimed}")), Vec::new()),
        400,
        "DIGEST_INVALID",
    );
    assert_no_blob(&reg, "mismatch", &claimed);
    assert_no_blob(&reg, "mismatch", &actual);

    // POST then PUT-with-body, wrong digest.
    let loc = start_upload(&reg, "mismatch");
    expect_error(
        &reg.put(
            &with_query(&loc, &format!("digest={claimed}")),
            bytes.clone(),
        ),
        400,
        "DIGEST_INVALID",
    );
    assert_no_blob(&reg, "mismatch", &claimed);
    assert_no_blob(&reg, "mismatch", &actual);

    // Single POST, wrong digest.
    expect_error(
        &reg.post(
            &format!("/v2/mismatch/blobs/uploads/?digest={claimed}"),
            bytes.clone(),
        ),
        400,
        "DIGEST_INVALID",
    );
    assert_no_blob(&reg, "mismatch", &claimed);
    assert_no_blob(&reg, "mismatch", &actual);
    reg.alive();
}

#[test]
fn blob_put_without_or_with_malformed_digest() {
    let reg = Reg::start();
    let bytes = data("nodigest", 100);
    let loc = start_upload(&reg, "nodigest");
    let r = reg.patch(&loc, Some("0-99"), bytes.clone());
    r.expect(202);
    let loc = r.must_header("location").to_string();
    expect_error(&reg.put(&loc, Vec::new()), 400, "DIGEST_INVALID");
    let loc = start_upload(&reg, "nodigest");
    expect_error(
        &reg.put(&with_query(&loc, "digest=sha256:xyz"), bytes.clone()),
        400,
        "DIGEST_INVALID",
    );
    let loc = start_upload(&reg, "nodigest");
    expect_error(
        &reg.put(
            &with_query(&loc, "digest=md5:d41d8cd98f00b204e9800998ecf8427e"),
            bytes.clone(),
        ),
        400,
        "DIGEST_INVALID",
    );
    expect_error(
        &reg.post(
            "/v2/nodigest/blobs/uploads/?digest=sha256:xyz",
            bytes.clone(),
        ),
        400,
        "DIGEST_INVALID",
    );
    assert_no_blob(&reg, "nodigest", &sha256_digest(&bytes));
    reg.alive();
}

#[test]
fn blob_upload_session_is_bound_to_its_repository() {
    let reg = Reg::start();
    let bytes = data("foreign", 200);
    let digest = sha256_digest(&bytes);
    push_blob(&reg, "other", b"other repo exists");
    let loc = reg.abs(&start_upload(&reg, "owner"));
    let r = reg.patch(&loc, Some("0-99"), bytes[..100].to_vec());
    r.expect(202);
    let loc = reg.abs(r.must_header("location"));
    let foreign = loc.replace("/v2/owner/", "/v2/other/");
    assert_ne!(foreign, loc);
    expect_error(&reg.get(&foreign), 404, "BLOB_UPLOAD_UNKNOWN");
    expect_error(
        &reg.patch(&foreign, Some("100-199"), bytes[100..].to_vec()),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    expect_error(
        &reg.put(
            &with_query(&foreign, &format!("digest={digest}")),
            bytes[100..].to_vec(),
        ),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    expect_error(&reg.delete(&foreign), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_no_blob(&reg, "other", &digest);
    // The session is untouched in its own repository.
    reg.get(&loc).expect(204).expect_header("range", "0-99");
    finish_upload(&reg, &loc, &digest, bytes[100..].to_vec());
    assert_blob(&reg, "owner", &bytes);
    assert_no_blob(&reg, "other", &digest);
}

#[test]
fn blob_cross_repository_mount() {
    let reg = Reg::start();
    let bytes = data("mount", 3000);
    let digest = push_blob(&reg, "mount/src", &bytes);
    push_blob(&reg, "mount/empty", b"unrelated");
    // Blobs are per repository until mounted.
    assert_no_blob(&reg, "mount/dst", &digest);

    let r = reg.post(
        &format!("/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src"),
        Vec::new(),
    );
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    let pulled = reg.get(r.must_header("location"));
    pulled.expect(200);
    assert!(pulled.body == bytes, "blob at mount Location differs");
    assert_blob(&reg, "mount/dst", &bytes);
    assert_blob(&reg, "mount/src", &bytes);

    // `from` does not hold it (though another repository does): a normal session.
    let r = reg.post(
        &format!("/v2/mount/third/blobs/uploads/?mount={digest}&from=mount/empty"),
        Vec::new(),
    );
    r.expect(202);
    let loc = r.must_header("location").to_string();
    assert_no_blob(&reg, "mount/third", &digest);
    // ...which works as an upload.
    finish_upload(&reg, &loc, &digest, bytes.clone());
    assert_blob(&reg, "mount/third", &bytes);

    // A digest no repository holds, from a repository that does not exist.
    let unknown = sha256_digest(b"never pushed");
    let r = reg.post(
        &format!("/v2/mount/fourth/blobs/uploads/?mount={unknown}&from=nowhere"),
        Vec::new(),
    );
    r.expect(202);
    r.must_header("location");
    assert_no_blob(&reg, "mount/fourth", &unknown);
}

// ---------------------------------------------------------------------------
// Blob reads and deletes
// ---------------------------------------------------------------------------

#[test]
fn blob_get_and_head_with_nested_names() {
    let reg = Reg::start();
    for repo in ["a/b/c", "x.y_z-w", "a__b/c---d", "n1/n2/n3/n4/n5"] {
        let bytes = data(repo, 777);
        push_blob(&reg, repo, &bytes);
        assert_blob(&reg, repo, &bytes);
    }
}

#[test]
fn blob_range_requests() {
    let reg = Reg::start();
    let bytes = b"0123456789abcdefghij".to_vec(); // 20 bytes
    let digest = push_blob(&reg, "range", &bytes);
    let path = format!("/v2/range/blobs/{digest}");
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=2-5", 2, 5),
        ("bytes=-3", 17, 19),
        ("bytes=5-", 5, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=2-1000", 2, 19), // end clamped to the size
        ("bytes=0-19", 0, 19),
    ];
    for &(range, start, end) in cases {
        let r = reg.get_range(&path, range);
        r.expect(206)
            .expect_header("content-range", &format!("bytes {start}-{end}/20"));
        assert_eq!(
            r.content_length(),
            (end - start + 1) as u64,
            "{range}: Content-Length"
        );
        assert_eq!(r.body, bytes[start..=end], "{range}: body");
        assert_eq!(
            r.header("docker-content-digest"),
            Some(digest.as_str()),
            "{range}: digest header"
        );
    }
    for range in ["bytes=100-", "bytes=20-25", "bytes=10-5"] {
        reg.get_range(&path, range)
            .expect(416)
            .expect_header("content-range", "bytes */20");
    }
    reg.alive();
}

#[test]
fn blob_unknown_and_malformed_digests() {
    let reg = Reg::start();
    push_blob(&reg, "bad", b"content");
    assert_no_blob(&reg, "bad", &sha256_digest(b"unknown"));
    // Unknown repository, well-formed digest.
    let r = reg.get(&format!(
        "/v2/nosuchrepo/blobs/{}",
        sha256_digest(b"unknown")
    ));
    r.expect(404);
    let code = error_code(&r);
    assert!(
        code == "BLOB_UNKNOWN" || code == "NAME_UNKNOWN",
        "{}: code {code}",
        r.what
    );
    for bad in [
        "sha256:xyz",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "sha256:0123456789abcdef",
        "notadigest",
    ] {
        let path = format!("/v2/bad/blobs/{bad}");
        expect_error(&reg.get(&path), 400, "DIGEST_INVALID");
        reg.head(&path).expect(400);
        expect_error(&reg.delete(&path), 400, "DIGEST_INVALID");
    }
    reg.alive();
}

#[test]
fn blob_delete() {
    let reg = Reg::start();
    let bytes = data("delete", 321);
    let digest = push_blob(&reg, "del", &bytes);
    push_blob(&reg, "del", b"stays");
    reg.delete(&format!("/v2/del/blobs/{digest}")).expect(202);
    assert_no_blob(&reg, "del", &digest);
    expect_error(
        &reg.delete(&format!("/v2/del/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_blob(&reg, "del", b"stays");
    // It can be pushed again.
    push_blob(&reg, "del", &bytes);
    assert_blob(&reg, "del", &bytes);
}

#[test]
fn blob_delete_is_repository_scoped() {
    let reg = Reg::start();
    let bytes = data("shared", 99);
    let digest = push_blob(&reg, "share/one", &bytes);
    push_blob(&reg, "share/two", &bytes);
    reg.delete(&format!("/v2/share/one/blobs/{digest}"))
        .expect(202);
    assert_no_blob(&reg, "share/one", &digest);
    assert_blob(&reg, "share/two", &bytes);
}

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// Pushes `bytes` by tag and checks every way of reading it back.
fn roundtrip(reg: &Reg, repo: &str, tag: &str, media_type: &str, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let r = put_manifest(reg, repo, tag, media_type, bytes);
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    let pulled = reg.get(r.must_header("location"));
    pulled.expect(200).expect_header("content-type", media_type);
    assert_eq!(
        pulled.text(),
        String::from_utf8_lossy(bytes),
        "manifest at Location"
    );
    assert_manifest(reg, repo, tag, media_type, bytes);
    assert_manifest(reg, repo, &digest, media_type, bytes);
    digest
}

#[test]
fn manifest_oci_image_roundtrip() {
    let reg = Reg::start();
    let m = image(&reg, "oci/image", "oci", false);
    let d = roundtrip(&reg, "oci/image", "v1.0", OCI_MANIFEST, &m);
    // A manifest without subject has no OCI-Subject header.
    let r = put_manifest(&reg, "oci/image", "again", OCI_MANIFEST, &m);
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(
        r.header("oci-subject"),
        None,
        "OCI-Subject on a manifest without subject"
    );
}

#[test]
fn manifest_oci_index_roundtrip() {
    let reg = Reg::start();
    let a = image(&reg, "oci/index", "amd64", false);
    let b = image(&reg, "oci/index", "arm64", false);
    let da = push_manifest(&reg, "oci/index", &sha256_digest(&a), OCI_MANIFEST, &a);
    let db = push_manifest(&reg, "oci/index", &sha256_digest(&b), OCI_MANIFEST, &b);
    let idx = index_manifest(
        OCI_INDEX,
        &[
            platform_desc(OCI_MANIFEST, &da, a.len(), "amd64"),
            platform_desc(OCI_MANIFEST, &db, b.len(), "arm64"),
        ],
        ",\n\"annotations\":{\"org.opencontainers.image.ref.name\" : \"multi\"}",
    );
    roundtrip(&reg, "oci/index", "multi", OCI_INDEX, &idx);
    // The children are still there by digest.
    assert_manifest(&reg, "oci/index", &da, OCI_MANIFEST, &a);
}

#[test]
fn manifest_docker_schema2_roundtrip() {
    let reg = Reg::start();
    let m = image(&reg, "docker/image", "docker", true);
    roundtrip(&reg, "docker/image", "latest", DOCKER_MANIFEST, &m);
}

#[test]
fn manifest_docker_manifest_list_roundtrip() {
    let reg = Reg::start();
    let a = image(&reg, "docker/list", "amd64", true);
    let b = image(&reg, "docker/list", "arm64", true);
    let da = push_manifest(&reg, "docker/list", "amd64", DOCKER_MANIFEST, &a);
    let db = push_manifest(&reg, "docker/list", "arm64", DOCKER_MANIFEST, &b);
    let list = index_manifest(
        DOCKER_LIST,
        &[
            platform_desc(DOCKER_MANIFEST, &da, a.len(), "amd64"),
            platform_desc(DOCKER_MANIFEST, &db, b.len(), "arm64"),
        ],
        "",
    );
    roundtrip(&reg, "docker/list", "latest", DOCKER_LIST, &list);
    assert_manifest(&reg, "docker/list", "arm64", DOCKER_MANIFEST, &b);
}

#[test]
fn manifest_put_by_digest() {
    let reg = Reg::start();
    let m = image(&reg, "bydigest", "bd", false);
    let digest = sha256_digest(&m);
    let r = put_manifest(&reg, "bydigest", &digest, OCI_MANIFEST, &m);
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    let pulled = reg.get(r.must_header("location"));
    pulled.expect(200);
    assert_eq!(pulled.body, m, "manifest at Location");
    assert_manifest(&reg, "bydigest", &digest, OCI_MANIFEST, &m);
    let t = reg.get("/v2/bydigest/tags/list");
    t.expect(200);
    let t = t.json();
    assert!(
        t["tags"].is_null() || t["tags"].as_array().is_some_and(|a| a.is_empty()),
        "push by digest created tags: {t}"
    );

    // The digest in the URL must match the body.
    let other = image(&reg, "bydigest", "other", false);
    let wrong = sha256_digest(b"not the manifest");
    expect_error(
        &put_manifest(&reg, "bydigest", &wrong, OCI_MANIFEST, &other),
        400,
        "DIGEST_INVALID",
    );
    assert_no_manifest(&reg, "bydigest", &wrong);
    assert_no_manifest(&reg, "bydigest", &sha256_digest(&other));
}

#[test]
fn manifest_retag_moves_tag() {
    let reg = Reg::start();
    let one = image(&reg, "retag", "one", false);
    let two = image(&reg, "retag", "two", false);
    let d1 = push_manifest(&reg, "retag", "latest", OCI_MANIFEST, &one);
    push_manifest(&reg, "retag", "latest", OCI_MANIFEST, &two);
    assert_manifest(&reg, "retag", "latest", OCI_MANIFEST, &two);
    assert_manifest(&reg, "retag", &d1, OCI_MANIFEST, &one);
}

#[test]
fn manifest_missing_blobs_rejected() {
    let reg = Reg::start();
    let config = b"{\"os\":\"linux\"}".to_vec();
    let layer = data("layer", 100);
    let cd = push_blob(&reg, "missing", &config);
    let ld = push_blob(&reg, "missing", &layer);
    let absent = sha256_digest(b"absent");

    // Missing layer.
    let m = image_manifest(
        OCI_MANIFEST,
        &desc(OCI_CONFIG, &cd, config.len()),
        &[
            desc(OCI_LAYER, &ld, layer.len()),
            desc(OCI_LAYER, &absent, 6),
        ],
        "",
    );
    expect_error(
        &put_manifest(&reg, "missing", "t", OCI_MANIFEST, &m),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_no_manifest(&reg, "missing", "t");
    assert_no_manifest(&reg, "missing", &sha256_digest(&m));

    // Missing config (Docker schema2 too).
    let m = image_manifest(
        DOCKER_MANIFEST,
        &desc(DOCKER_CONFIG, &absent, 6),
        &[desc(DOCKER_LAYER, &ld, 100)],
        "",
    );
    expect_error(
        &put_manifest(&reg, "missing", "t", DOCKER_MANIFEST, &m),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_no_manifest(&reg, "missing", "t");

    // Blobs held by another repository do not count.
    let m = image_manifest(
        OCI_MANIFEST,
        &desc(OCI_CONFIG, &cd, config.len()),
        &[desc(OCI_LAYER, &ld, 100)],
        "",
    );
    expect_error(
        &put_manifest(&reg, "elsewhere", "t", OCI_MANIFEST, &m),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    reg.alive();
}

#[test]
fn manifest_index_with_missing_child_rejected() {
    let reg = Reg::start();
    let a = image(&reg, "idxmiss", "a", false);
    let da = push_manifest(&reg, "idxmiss", "a", OCI_MANIFEST, &a);
    let absent = sha256_digest(b"no such manifest");
    let idx = index_manifest(
        OCI_INDEX,
        &[
            platform_desc(OCI_MANIFEST, &da, a.len(), "amd64"),
            platform_desc(OCI_MANIFEST, &absent, 500, "arm64"),
        ],
        "",
    );
    expect_error(
        &put_manifest(&reg, "idxmiss", "multi", OCI_INDEX, &idx),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_no_manifest(&reg, "idxmiss", "multi");
    let list = index_manifest(
        DOCKER_LIST,
        &[platform_desc(DOCKER_MANIFEST, &absent, 500, "arm64")],
        "",
    );
    expect_error(
        &put_manifest(&reg, "idxmiss", "list", DOCKER_LIST, &list),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_no_manifest(&reg, "idxmiss", "list");
    reg.alive();
}

#[test]
fn manifest_invalid_json_rejected() {
    let reg = Reg::start();
    push_blob(&reg, "invalid", b"repo exists");
    for body in [
        &b"{not json"[..],
        b"",
        b"{\"schemaVersion\": 2, \"config\": ",
        b"\xff\xfe\x00garbage",
    ] {
        expect_error(
            &put_manifest(&reg, "invalid", "t", OCI_MANIFEST, body),
            400,
            "MANIFEST_INVALID",
        );
        assert_no_manifest(&reg, "invalid", "t");
        assert_no_manifest(&reg, "invalid", &sha256_digest(body));
    }
    reg.alive();
}

#[test]
fn manifest_over_4_mib_refused() {
    let reg = Reg::start();
    let config = b"{}".to_vec();
    let cd = push_blob(&reg, "huge", &config);
    let pad = "x".repeat(4 * 1024 * 1024 + 100);
    let m = image_manifest(
        OCI_MANIFEST,
        &desc(OCI_EMPTY, &cd, 2),
        &[],
        &format!(",\"annotations\":{{\"pad\":\"{pad}\"}}"),
    );
    assert!(m.len() > 4 * 1024 * 1024);
    let req = reg
        .request(Method::PUT, "/v2/huge/manifests/big")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .build()
        .unwrap();
    // The server may answer before reading the whole body and close the
    // connection, which a client can see as a send error; a 2xx is a failure.
    match reg.client.execute(req) {
        Ok(resp) => {
            let status = resp.status().as_u16();
            assert!(
                (400..500).contains(&status),
                "oversized manifest: expected 4xx (413), got {status}"
            );
            assert_eq!(
                resp.headers()
                    .get("docker-distribution-api-version")
                    .map(|v| v.to_str().unwrap()),
                Some("registry/2.0")
            );
        }
        Err(e) => eprintln!(
            "oversized manifest: connection closed early ({e}); checking nothing was stored"
        ),
    }
    assert_no_manifest(&reg, "huge", "big");
    assert_no_manifest(&reg, "huge", &sha256_digest(&m));
    reg.alive();
}

#[test]
fn manifest_unknown() {
    let reg = Reg::start();
    let m = image(&reg, "unknown", "u", false);
    push_manifest(&reg, "unknown", "present", OCI_MANIFEST, &m);
    assert_no_manifest(&reg, "unknown", "absent");
    assert_no_manifest(&reg, "unknown", &sha256_digest(b"no manifest"));
    // A blob digest is not a manifest.
    let blob = push_blob(&reg, "unknown", b"just a blob");
    assert_no_manifest(&reg, "unknown", &blob);
    // In a repository that does not exist at all.
    let r = get_manifest(&reg, Method::GET, "no/such/repo", "latest");
    r.expect(404);
    let code = error_code(&r);
    assert!(
        code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN",
        "{}: code {code}",
        r.what
    );
    get_manifest(&reg, Method::HEAD, "no/such/repo", "latest").expect(404);
    // A manifest digest from another (existing) repository.
    push_blob(&reg, "unknown2", b"repo exists");
    assert_no_manifest(&reg, "unknown2", &sha256_digest(&m));
}

#[test]
fn manifest_delete_by_tag_removes_only_the_tag() {
    let reg = Reg::start();
    let m = image(&reg, "deltag", "dt", false);
    let d = push_manifest(&reg, "deltag", "one", OCI_MANIFEST, &m);
    push_manifest(&reg, "deltag", "two", OCI_MANIFEST, &m);
    reg.delete("/v2/deltag/manifests/one").expect(202);
    assert_no_manifest(&reg, "deltag", "one");
    assert_manifest(&reg, "deltag", "two", OCI_MANIFEST, &m);
    assert_manifest(&reg, "deltag", &d, OCI_MANIFEST, &m);
    assert_eq!(tags(&reg, "/v2/deltag/tags/list").0, ["two"]);
    expect_error(
        &reg.delete("/v2/deltag/manifests/one"),
        404,
        "MANIFEST_UNKNOWN",
    );
    expect_error(
        &reg.delete("/v2/deltag/manifests/never"),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn manifest_delete_by_digest() {
    let reg = Reg::start();
    let m = image(&reg, "deldigest", "dd", false);
    let keep = image(&reg, "deldigest", "keep", false);
    let d = push_manifest(&reg, "deldigest", "one", OCI_MANIFEST, &m);
    push_manifest(&reg, "deldigest", "two", OCI_MANIFEST, &m);
    push_manifest(&reg, "deldigest", "keep", OCI_MANIFEST, &keep);
    reg.delete(&format!("/v2/deldigest/manifests/{d}"))
        .expect(202);
    assert_no_manifest(&reg, "deldigest", &d);
    let r = reg.delete(&format!("/v2/no/such/repo/manifests/{d}"));
    r.expect(404);
    let code = error_code(&r);
    assert!(
        code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN",
        "{}: code {code}",
        r.what
    );
    assert_no_manifest(&reg, "deldigest", "one");
    assert_no_manifest(&reg, "deldigest", "two");
    assert_manifest(&reg, "deldigest", "keep", OCI_MANIFEST, &keep);
    assert_eq!(tags(&reg, "/v2/deldigest/tags/list").0, ["keep"]);
    expect_error(
        &reg.delete(&format!("/v2/deldigest/manifests/{d}")),
        404,
        "MANIFEST_UNKNOWN",
    );
    // It can be pushed again.
    push_manifest(&reg, "deldigest", "again", OCI_MANIFEST, &m);
    assert_manifest(&reg, "deldigest", "again", OCI_MANIFEST, &m);
}

#[test]
fn manifest_invalid_tags_rejected() {
    let reg = Reg::start();
    let m = image(&reg, "tagcheck", "tc", false);
    let max = format!("A{}", "b".repeat(127));
    assert_eq!(max.len(), 128);
    push_manifest(&reg, "tagcheck", &max, OCI_MANIFEST, &m);
    assert_manifest(&reg, "tagcheck", &max, OCI_MANIFEST, &m);
    push_manifest(&reg, "tagcheck", "_under.score-1", OCI_MANIFEST, &m);
    let too_long = "c".repeat(129);
    for bad in [
        "-bad",
        ".bad",
        ".INVALID_MANIFEST_NAME",
        too_long.as_str(),
        "bad%21tag",
    ] {
        let r = put_manifest(&reg, "tagcheck", bad, OCI_MANIFEST, &m);
        expect_error(&r, 400, "MANIFEST_INVALID");
        // Reads of a reference that can name no manifest answer as
        // registry:2 does, which clients probing for images expect.
        let r = get_manifest(&reg, Method::GET, "tagcheck", bad);
        expect_error(&r, 404, "MANIFEST_UNKNOWN");
        get_manifest(&reg, Method::HEAD, "tagcheck", bad).expect(404);
    }
    let (mut list, _) = tags(&reg, "/v2/tagcheck/tags/list");
    list.sort();
    assert_eq!(list, [max.as_str(), "_under.score-1"]);
    reg.alive();
}

#[test]
fn invalid_repository_names_rejected() {
    let reg = Reg::start();
    let addr = reg.berth.addr.clone();
    let long = "abcdefghi/".repeat(30) + "x"; // 301 characters, each component valid
    let digest = sha256_digest(b"x");
    for name in [
        "UPPER/x",
        "a//b",
        "../x",
        "x/..",
        "a/./b",
        "-lead",
        "trail-",
        "a___b",
        "a/.hidden",
        long.as_str(),
    ] {
        for (method, path) in [
            ("GET", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/tags/list")),
            ("GET", format!("/v2/{name}/blobs/{digest}")),
            ("POST", format!("/v2/{name}/blobs/uploads/")),
        ] {
            let (status, headers, body) = raw_request(&addr, method, &path);
            assert_eq!(
                status,
                400,
                "{method} {path}: status; body {}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                headers
                    .iter()
                    .any(|(k, v)| k == "docker-distribution-api-version" && v == "registry/2.0"),
                "{method} {path}: no API version header"
            );
            let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: body not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert_eq!(
                v["errors"][0]["code"], "NAME_INVALID",
                "{method} {path}: {v}"
            );
        }
    }
    // Nothing was created.
    assert_eq!(catalog(&reg, "/v2/_catalog").0, Vec::<String>::new());
    reg.alive();
}

// ---------------------------------------------------------------------------
// Tags and catalog
// ---------------------------------------------------------------------------

#[test]
fn tags_list_sorted_and_paginated() {
    let reg = Reg::start();
    let repo = "tags/repo";
    let m = image(&reg, repo, "t", false);
    for tag in ["v3", "a1", "v10", "b2", "latest"] {
        push_manifest(&reg, repo, tag, OCI_MANIFEST, &m);
    }
    let r = reg.get(&format!("/v2/{repo}/tags/list"));
    r.expect(200);
    assert_eq!(
        r.json(),
        json!({"name": repo, "tags": ["a1", "b2", "latest", "v10", "v3"]})
    );
    assert_eq!(r.header("link"), None, "Link on a complete list");

    // Pages of two, following Link.
    let (page, link) = tags(&reg, &format!("/v2/{repo}/tags/list?n=2"));
    assert_eq!(page, ["a1", "b2"]);
    let link = link.expect("Link header on the first page");
    assert!(
        link.starts_with(&format!("/v2/{repo}/tags/list?")),
        "Link target {link:?}"
    );
    assert!(link.contains("last=b2"), "Link target {link:?}");
    let (page, link) = tags(&reg, &link);
    assert_eq!(page, ["latest", "v10"]);
    let (page, link) = tags(&reg, &link.expect("Link header on the second page"));
    assert_eq!(page, ["v3"]);
    assert_eq!(link, None, "Link header on the last page");

    // `last` alone, `n` larger than the list, `n=0`.
    assert_eq!(
        tags(&reg, &format!("/v2/{repo}/tags/list?last=latest")),
        (vec!["v10".into(), "v3".into()], None)
    );
    assert_eq!(tags(&reg, &format!("/v2/{repo}/tags/list?n=10")).0.len(), 5);
    assert_eq!(tags(&reg, &format!("/v2/{repo}/tags/list?n=10")).1, None);
    assert_eq!(
        tags(&reg, &format!("/v2/{repo}/tags/list?n=0")),
        (vec![], None)
    );
    assert_eq!(
        tags(&reg, &format!("/v2/{repo}/tags/list?n=2&last=v10")),
        (vec!["v3".into()], None)
    );
    assert_eq!(
        tags(&reg, &format!("/v2/{repo}/tags/list?last=v3")),
        (vec![], None)
    );
}

#[test]
fn tags_list_unknown_repository() {
    let reg = Reg::start();
    expect_error(&reg.get("/v2/no/such/repo/tags/list"), 404, "NAME_UNKNOWN");
    expect_error(&reg.get("/v2/nosuch/tags/list?n=5"), 404, "NAME_UNKNOWN");
    reg.alive();
}

#[test]
fn catalog_sorted_and_paginated() {
    let reg = Reg::start();
    assert_eq!(catalog(&reg, "/v2/_catalog"), (vec![], None));
    for repo in ["zeta", "alpha/one", "mid", "alpha", "beta/x/y"] {
        let m = image(&reg, repo, repo, false);
        push_manifest(&reg, repo, "latest", OCI_MANIFEST, &m);
    }
    let r = reg.get("/v2/_catalog");
    r.expect(200);
    assert_eq!(
        r.json(),
        json!({"repositories": ["alpha", "alpha/one", "beta/x/y", "mid", "zeta"]})
    );
    assert_eq!(r.header("link"), None);

    let (page, link) = catalog(&reg, "/v2/_catalog?n=2");
    assert_eq!(page, ["alpha", "alpha/one"]);
    let link = link.expect("Link header on the first page");
    assert!(link.starts_with("/v2/_catalog?"), "Link target {link:?}");
    assert!(link.contains("last="), "Link target {link:?}");
    let (page, link) = catalog(&reg, &link);
    assert_eq!(page, ["beta/x/y", "mid"]);
    let (page, link) = catalog(&reg, &link.expect("Link header on the second page"));
    assert_eq!(page, ["zeta"]);
    assert_eq!(link, None);

    assert_eq!(
        catalog(&reg, "/v2/_catalog?n=2&last=beta/x/y"),
        (vec!["mid".into(), "zeta".into()], None)
    );
    assert_eq!(catalog(&reg, "/v2/_catalog?n=0"), (vec![], None));
}

// ---------------------------------------------------------------------------
// Referrers
// ---------------------------------------------------------------------------

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIG_CONFIG: &str = "application/vnd.example.signature.config.v1";

/// Pushes an artifact manifest with `subject` and checks OCI-Subject.
fn push_referrer(
    reg: &Reg,
    repo: &str,
    subject: (&str, usize),
    artifact_type: Option<&str>,
    config_type: &str,
    annotations: Option<&str>,
    seed: &str,
) -> (String, usize) {
    let config = if config_type == OCI_EMPTY {
        b"{}".to_vec()
    } else {
        format!("{{\"seed\":\"{seed}\"}}").into_bytes()
    };
    let cd = push_blob(reg, repo, &config);
    let layer = data(seed, 64);
    let ld = push_blob(reg, repo, &layer);
    let mut extra = format!(
        ",\n  \"subject\" : {}",
        desc(OCI_MANIFEST, subject.0, subject.1)
    );
    if let Some(t) = artifact_type {
        extra += &format!(",\"artifactType\":\"{t}\"");
    }
    if let Some(a) = annotations {
        extra += &format!(",\n\"annotations\": {a}");
    }
    let m = image_manifest(
        OCI_MANIFEST,
        &desc(config_type, &cd, config.len()),
        &[desc("application/octet-stream", &ld, 64)],
        &extra,
    );
    let digest = sha256_digest(&m);
    let r = put_manifest(reg, repo, &digest, OCI_MANIFEST, &m);
    r.expect(201)
        .expect_header("docker-content-digest", &digest)
        .expect_header("oci-subject", subject.0);
    (digest, m.len())
}

/// GET referrers; checks status, Content-Type and index shape; returns the
/// descriptors sorted by digest and the OCI-Filters-Applied header.
fn referrers(reg: &Reg, path: &str) -> (Vec<Value>, Option<String>) {
    let r = reg.get(path);
    r.expect(200).expect_header("content-type", OCI_INDEX);
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2, "{}: {v}", r.what);
    assert_eq!(v["mediaType"], OCI_INDEX, "{}: {v}", r.what);
    let mut list = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no manifests array: {v}", r.what))
        .clone();
    list.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    (list, r.header("oci-filters-applied").map(str::to_string))
}

fn assert_descriptor(
    d: &Value,
    digest: &str,
    size: usize,
    artifact_type: Option<&str>,
    annotations: Option<Value>,
) {
    assert_eq!(d["mediaType"], OCI_MANIFEST, "{d}");
    assert_eq!(d["digest"], digest, "{d}");
    assert_eq!(d["size"], size, "{d}");
    match artifact_type {
        Some(t) => assert_eq!(d["artifactType"], t, "{d}"),
        None => assert!(
            d.get("artifactType").is_none_or(|t| t.is_null()),
            "artifactType should be absent: {d}"
        ),
    }
    match annotations {
        Some(a) => assert_eq!(d["annotations"], a, "{d}"),
        None => assert!(
            d.get("annotations")
                .is_none_or(|a| a.is_null() || a.as_object().is_some_and(|o| o.is_empty())),
            "annotations should be absent: {d}"
        ),
    }
}

#[test]
fn referrers_list_and_filter() {
    let reg = Reg::start();
    let repo = "ref/app";
    let img = image(&reg, repo, "subject", false);
    let subject = push_manifest(&reg, repo, "v1", OCI_MANIFEST, &img);
    let anns = "{\"org.opencontainers.image.created\":\"2024-01-01T00:00:00Z\", \"org.example.sbom.format\" : \"json\"}";
    let (sbom, sbom_len) = push_referrer(
        &reg,
        repo,
        (&subject, img.len()),
        Some(SBOM),
        OCI_EMPTY,
        Some(anns),
        "sbom",
    );
    // No artifactType: the config media type stands in for it.
    let (sig, sig_len) = push_referrer(
        &reg,
        repo,
        (&subject, img.len()),
        None,
        SIG_CONFIG,
        None,
        "sig",
    );
    // Noise: an unrelated image, and a referrer of the same digest in another repository.
    let other = image(&reg, repo, "unrelated", false);
    push_manifest(&reg, repo, "other", OCI_MANIFEST, &other);
    push_referrer(
        &reg,
        "ref/elsewhere",
        (&subject, img.len()),
        Some(SBOM),
        OCI_EMPTY,
        None,
        "elsewhere",
    );

    let (list, filters) = referrers(&reg, &format!("/v2/{repo}/referrers/{subject}"));
    assert_eq!(filters, None, "OCI-Filters-Applied without a filter");
    assert_eq!(list.len(), 2, "referrers: {list:?}");
    let anns_json: Value = serde_json::from_str(anns).unwrap();
    for d in &list {
        if d["digest"] == sbom.as_str() {
            assert_descriptor(d, &sbom, sbom_len, Some(SBOM), Some(anns_json.clone()));
        } else {
            assert_descriptor(d, &sig, sig_len, Some(SIG_CONFIG), None);
        }
    }

    let (list, filters) = referrers(
        &reg,
        &format!("/v2/{repo}/referrers/{subject}?artifactType={SBOM}"),
    );
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(list.len(), 1, "filtered referrers: {list:?}");
    assert_descriptor(&list[0], &sbom, sbom_len, Some(SBOM), Some(anns_json));

    let (list, filters) = referrers(
        &reg,
        &format!("/v2/{repo}/referrers/{subject}?artifactType={SIG_CONFIG}"),
    );
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(list.len(), 1, "filtered referrers: {list:?}");
    assert_descriptor(&list[0], &sig, sig_len, Some(SIG_CONFIG), None);

    let (list, filters) = referrers(
        &reg,
        &format!("/v2/{repo}/referrers/{subject}?artifactType=application/x-none"),
    );
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert!(list.is_empty(), "{list:?}");

    // Deleting a referrer removes it from the list.
    reg.delete(&format!("/v2/{repo}/manifests/{sig}"))
        .expect(202);
    let (list, _) = referrers(&reg, &format!("/v2/{repo}/referrers/{subject}"));
    assert_eq!(list.len(), 1, "after delete: {list:?}");
    assert_eq!(list[0]["digest"], sbom.as_str());
}

#[test]
fn referrers_of_unknown_digest_is_empty() {
    let reg = Reg::start();
    let img = image(&reg, "ref/empty", "e", false);
    let subject = push_manifest(&reg, "ref/empty", "v1", OCI_MANIFEST, &img);
    assert!(
        referrers(&reg, &format!("/v2/ref/empty/referrers/{subject}"))
            .0
            .is_empty()
    );
    let unknown = sha256_digest(b"no such subject");
    assert!(
        referrers(&reg, &format!("/v2/ref/empty/referrers/{unknown}"))
            .0
            .is_empty()
    );
    // A malformed digest is a bad request.
    let r = reg.get("/v2/ref/empty/referrers/sha256:xyz");
    r.expect(400);
    error_code(&r);
    reg.alive();
}

#[test]
fn referrers_subject_may_be_pushed_after_the_referrer() {
    let reg = Reg::start();
    let repo = "ref/order";
    let img = image(&reg, repo, "later", false);
    let subject = sha256_digest(&img);
    // The subject does not exist yet; the referrer must still be accepted.
    let (sbom, sbom_len) = push_referrer(
        &reg,
        repo,
        (&subject, img.len()),
        Some(SBOM),
        OCI_EMPTY,
        None,
        "early",
    );
    let (list, _) = referrers(&reg, &format!("/v2/{repo}/referrers/{subject}"));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_descriptor(&list[0], &sbom, sbom_len, Some(SBOM), None);
    push_manifest(&reg, repo, "v1", OCI_MANIFEST, &img);
    assert_eq!(
        referrers(&reg, &format!("/v2/{repo}/referrers/{subject}"))
            .0
            .len(),
        1
    );
}

#[test]
fn referrers_index_without_artifact_type() {
    let reg = Reg::start();
    let repo = "ref/index";
    let img = image(&reg, repo, "s", false);
    let subject = push_manifest(&reg, repo, "v1", OCI_MANIFEST, &img);
    let idx = index_manifest(
        OCI_INDEX,
        &[],
        &format!(
            ",\"subject\":{},\"annotations\":{{\"k\":\"v\"}}",
            desc(OCI_MANIFEST, &subject, img.len())
        ),
    );
    let d = sha256_digest(&idx);
    let r = put_manifest(&reg, repo, &d, OCI_INDEX, &idx);
    r.expect(201).expect_header("oci-subject", &subject);
    let (list, _) = referrers(&reg, &format!("/v2/{repo}/referrers/{subject}"));
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    assert_eq!(entry["mediaType"], OCI_INDEX, "{entry}");
    assert_eq!(entry["digest"], d.as_str(), "{entry}");
    assert_eq!(entry["size"], idx.len(), "{entry}");
    assert!(
        entry.get("artifactType").is_none_or(|t| t.is_null()),
        "index referrer has artifactType: {entry}"
    );
    assert_eq!(entry["annotations"], json!({"k": "v"}), "{entry}");
}

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

#[test]
fn state_survives_restart() {
    let mut reg = Reg::start();
    let m = image(&reg, "persist", "p", false);
    let d = push_manifest(&reg, "persist", "v1", OCI_MANIFEST, &m);
    let bytes = data("persist-upload", 200);
    let digest = sha256_digest(&bytes);
    let loc = start_upload(&reg, "persist");
    let r = reg.patch(&loc, Some("0-99"), bytes[..100].to_vec());
    r.expect(202);
    let loc = r.must_header("location").to_string();

    reg.berth.restart();

    assert_manifest(&reg, "persist", "v1", OCI_MANIFEST, &m);
    assert_manifest(&reg, "persist", &d, OCI_MANIFEST, &m);
    assert_eq!(tags(&reg, "/v2/persist/tags/list").0, ["v1"]);
    assert_eq!(catalog(&reg, "/v2/_catalog").0, ["persist"]);
    // The unfinished upload carries on where it stopped.
    reg.get(&loc).expect(204).expect_header("range", "0-99");
    let r = reg.patch(&loc, Some("100-199"), bytes[100..].to_vec());
    r.expect(202).expect_header("range", "0-199");
    finish_upload(&reg, r.must_header("location"), &digest, Vec::new());
    assert_blob(&reg, "persist", &bytes);
}
