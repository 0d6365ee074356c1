//! Blob uploads.

use crate::harness::*;

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
