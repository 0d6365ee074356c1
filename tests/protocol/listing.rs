//! Tags and catalog.

use crate::harness::*;

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
    // A started upload, a failed one and a pushed blob name no repository
    // in the catalog: only a manifest does.
    start_upload(&reg, "started/only");
    let failed = start_upload(&reg, "failed/upload");
    let wrong = format!("sha256:{}", "0".repeat(64));
    reg.put(
        &with_query(&failed, &format!("digest={wrong}")),
        b"x".to_vec(),
    )
    .expect(400);
    push_blob(&reg, "blob/only", b"layer");
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
