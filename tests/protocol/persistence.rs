//! Persistence.

use crate::harness::*;

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
