//! The protocol tests' harness: a server per test, plain HTTP helpers, and
//! builders for the blobs and manifests the tests push.

pub(crate) use crate::common::{Berth, sha256_digest};
pub(crate) use reqwest::Method;
pub(crate) use reqwest::blocking::{Body, Client, RequestBuilder};
pub(crate) use reqwest::header::HeaderMap;
pub(crate) use serde_json::{Value, json};
pub(crate) use std::io::{Read, Write};
pub(crate) use std::net::TcpStream;
pub(crate) use std::time::Duration;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

/// A fully read response.
pub(crate) struct Resp {
    pub(crate) what: String,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or_else(|_| panic!("{}: header {name} is not ASCII", self.what))
        })
    }

    pub(crate) fn must_header(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| {
            panic!(
                "{} → {}: missing header {name}; headers: {:?}",
                self.what, self.status, self.headers
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {:?}", self.what, self.text()))
    }

    /// Asserts the status code, showing the body when it differs.
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        self
    }

    pub(crate) fn expect_header(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "{} → {}: header {name}",
            self.what,
            self.status
        );
        self
    }

    pub(crate) fn content_length(&self) -> u64 {
        self.must_header("content-length")
            .parse()
            .expect("numeric Content-Length")
    }
}

/// A running server plus an HTTP client that does not follow redirects.
pub(crate) struct Reg {
    pub(crate) berth: Berth,
    pub(crate) client: Client,
}

impl Reg {
    pub(crate) fn start() -> Self {
        let berth = Berth::start();
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        Reg { berth, client }
    }

    /// Turns a path or a (possibly relative) Location into a full URL.
    pub(crate) fn abs(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            assert!(loc.starts_with('/'), "not an absolute path or URL: {loc:?}");
            format!("{}{}", self.berth.url(), loc)
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.abs(path))
    }

    /// Sends a request, reads the whole response and checks the header that
    /// every response of the registry must carry.
    pub(crate) fn send(&self, rb: RequestBuilder) -> Resp {
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

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path))
    }

    pub(crate) fn head(&self, path: &str) -> Resp {
        self.send(self.request(Method::HEAD, path))
    }

    pub(crate) fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path))
    }

    pub(crate) fn get_range(&self, path: &str, range: &str) -> Resp {
        self.send(self.request(Method::GET, path).header("Range", range))
    }

    pub(crate) fn post(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.request(Method::POST, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    pub(crate) fn put(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            self.request(Method::PUT, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    /// A chunk upload: with `range` it is a spec chunk (`Content-Range: a-b`),
    /// without it a plain append.
    pub(crate) fn patch(&self, path: &str, range: Option<&str>, body: Vec<u8>) -> Resp {
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
    pub(crate) fn patch_streamed(&self, path: &str, body: Vec<u8>) -> Resp {
        let body = Body::new(std::io::Cursor::new(body));
        self.send(
            self.request(Method::PATCH, path)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    /// The registry still answers the base endpoint.
    pub(crate) fn alive(&self) {
        self.get("/v2/").expect(200);
    }
}

/// A raw HTTP/1.1 exchange, for paths an HTTP client library would normalise
/// (`..`, `//`). Returns status, lower-cased headers and (de-chunked) body.
pub(crate) fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
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
pub(crate) fn error_code(r: &Resp) -> String {
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
pub(crate) fn expect_error(r: &Resp, status: u16, code: &str) {
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
pub(crate) fn data(seed: &str, len: usize) -> Vec<u8> {
    crate::common::content::bytes(seed, len)
}

/// Appends a query parameter to an upload location that may already have one.
pub(crate) fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

/// Monolithic single-POST upload; asserts 201 with Location and digest.
pub(crate) fn push_blob(reg: &Reg, repo: &str, bytes: &[u8]) -> String {
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
pub(crate) fn start_upload(reg: &Reg, repo: &str) -> String {
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
pub(crate) fn finish_upload(reg: &Reg, loc: &str, digest: &str, body: Vec<u8>) {
    let r = reg.put(&with_query(loc, &format!("digest={digest}")), body);
    r.expect(201).expect_header("docker-content-digest", digest);
    r.must_header("location");
}

/// GET and HEAD of a blob return exactly `bytes` with the right headers.
pub(crate) fn assert_blob(reg: &Reg, repo: &str, bytes: &[u8]) {
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
pub(crate) fn assert_no_blob(reg: &Reg, repo: &str, digest: &str) {
    let path = format!("/v2/{repo}/blobs/{digest}");
    expect_error(&reg.get(&path), 404, "BLOB_UNKNOWN");
    reg.head(&path).expect(404);
}

/// A descriptor as non-canonical JSON text.
pub(crate) fn desc(media_type: &str, digest: &str, size: usize) -> String {
    format!(
        "{{ \"mediaType\" :\"{media_type}\",\n      \"digest\":  \"{digest}\", \"size\" : {size} }}"
    )
}

/// An image manifest as non-canonical JSON (odd spacing, tabs, CRLF) so a
/// byte-exact round trip proves the registry does not re-serialise.
pub(crate) fn image_manifest(
    media_type: &str,
    config: &str,
    layers: &[String],
    extra: &str,
) -> Vec<u8> {
    format!(
        "{{\n  \"schemaVersion\":   2,\r\n\t\"mediaType\" : \"{media_type}\",\n  \"config\": {config},\n  \"layers\" : [ {} ]{extra}\n}}\n",
        layers.join(" ,\n    ")
    )
    .into_bytes()
}

/// An index / manifest list as non-canonical JSON.
pub(crate) fn index_manifest(media_type: &str, children: &[String], extra: &str) -> Vec<u8> {
    format!(
        "{{ \"schemaVersion\" : 2 ,\"mediaType\":\"{media_type}\",\n\n  \"manifests\":[\n {}\n ]{extra}   }}",
        children.join(",\n ")
    )
    .into_bytes()
}

/// A child descriptor with a platform, for indexes and manifest lists.
pub(crate) fn platform_desc(media_type: &str, digest: &str, size: usize, arch: &str) -> String {
    format!(
        "{{\"mediaType\":\"{media_type}\",\"digest\":\"{digest}\",\"size\":{size},\n   \"platform\" : {{ \"architecture\":\"{arch}\", \"os\" : \"linux\" }} }}"
    )
}

/// Pushes a config and one layer into `repo` and returns the manifest bytes
/// (not pushed) of an OCI image, or a Docker schema2 image when `docker`.
pub(crate) fn image(reg: &Reg, repo: &str, seed: &str, docker: bool) -> Vec<u8> {
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

pub(crate) fn put_manifest(
    reg: &Reg,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Resp {
    reg.send(
        reg.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(bytes.to_vec()),
    )
}

/// Pushes a manifest, asserts 201 with Location and Docker-Content-Digest,
/// and returns its digest.
pub(crate) fn push_manifest(
    reg: &Reg,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let digest = sha256_digest(bytes);
    let r = put_manifest(reg, repo, reference, media_type, bytes);
    r.expect(201)
        .expect_header("docker-content-digest", &digest);
    r.must_header("location");
    digest
}

pub(crate) fn get_manifest(reg: &Reg, method: Method, repo: &str, reference: &str) -> Resp {
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    reg.send(
        reg.request(method, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", accept),
    )
}

/// GET and HEAD of a manifest return exactly `bytes` with its media type.
pub(crate) fn assert_manifest(
    reg: &Reg,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
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
pub(crate) fn assert_no_manifest(reg: &Reg, repo: &str, reference: &str) {
    expect_error(
        &get_manifest(reg, Method::GET, repo, reference),
        404,
        "MANIFEST_UNKNOWN",
    );
    get_manifest(reg, Method::HEAD, repo, reference).expect(404);
}

/// The target of a `Link: <url>; rel="next"` header, if there is one.
pub(crate) fn next_link(r: &Resp) -> Option<String> {
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

pub(crate) fn tags(reg: &Reg, path: &str) -> (Vec<String>, Option<String>) {
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

pub(crate) fn catalog(reg: &Reg, path: &str) -> (Vec<String>, Option<String>) {
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
