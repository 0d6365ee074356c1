//! Referrers.

use crate::harness::*;

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
