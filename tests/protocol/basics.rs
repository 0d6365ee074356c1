//! Base endpoint, error format, routing.

use crate::harness::*;

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
