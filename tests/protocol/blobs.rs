//! Blob reads and deletes.

use crate::harness::*;

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
