//! Manifests.

use crate::harness::*;

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
