//! A tree distribution's registry:2 (2.8.2, Debian's docker-registry)
//! wrote, copied from its filesystem `rootdirectory`:
//!
//! 1. `skopeo copy oci:img1:v1 docker://…/demo/app:v1` and `:latest`;
//! 2. `skopeo copy oci:img2:v2 …/demo/app:v2`, then `…/demo/app:latest`
//!    (moving `latest`);
//! 3. an upload started and left (`POST …/blobs/uploads/?digest=`, which 2.8
//!    treats as a plain session start);
//! 4. a cross-repository mount of img1's layer into `other/mounted`;
//! 5. the `{}` blob uploaded and a signature manifest with `subject` = img2
//!    and `artifactType` pushed by digest.
//!
//! [`PUSHED`] is `find -type f` under `docker/registry/v2/` after that (link
//! contents in brackets, other files' sizes in parentheses), without the
//! `blobs/` side but for the three manifests, whose exact bytes are below.
//! [`AFTER_DELETE`] is the same after `DELETE /v2/demo/app/manifests/<img1>`.

pub const IMG1: &str = "sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41";
pub const IMG2: &str = "sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898";
pub const SIGNATURE: &str =
    "sha256:87c6f9c27e32bd748d87918e7922b8b64624808b439579f82e4e6a4553c4ad41";

/// The manifests' bytes, as pushed and as stored.
pub const MANIFESTS: [(&str, &str); 3] = [
    (
        IMG1,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3","size":151},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52","size":119}],"annotations":{"org.example":"one"}}"#,
    ),
    (
        IMG2,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34","size":151},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac","size":118}],"annotations":{"org.example":"two"}}"#,
    ),
    (
        SIGNATURE,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898","size":437}}"#,
    ),
];

pub const PUSHED: &str = "\
repositories/demo/app/_layers/sha256/10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac/link  [sha256:10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac]
repositories/demo/app/_layers/sha256/130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34/link  [sha256:130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34]
repositories/demo/app/_layers/sha256/43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52/link  [sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52]
repositories/demo/app/_layers/sha256/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a/link  [sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a]
repositories/demo/app/_layers/sha256/7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3/link  [sha256:7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3]
repositories/demo/app/_manifests/revisions/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/revisions/sha256/87c6f9c27e32bd748d87918e7922b8b64624808b439579f82e4e6a4553c4ad41/link  [sha256:87c6f9c27e32bd748d87918e7922b8b64624808b439579f82e4e6a4553c4ad41]
repositories/demo/app/_manifests/revisions/sha256/f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41/link  [sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41]
repositories/demo/app/_manifests/tags/latest/current/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/latest/index/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/latest/index/sha256/f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41/link  [sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41]
repositories/demo/app/_manifests/tags/v1/current/link  [sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41]
repositories/demo/app/_manifests/tags/v1/index/sha256/f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41/link  [sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41]
repositories/demo/app/_manifests/tags/v2/current/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/v2/index/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/data  (0 bytes)
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/hashstates/sha256/0  (108 bytes)
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/startedat  [2026-11-26T20:59:36Z]
repositories/other/mounted/_layers/sha256/43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52/link  [sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52]
";

pub const AFTER_DELETE: &str = "\
repositories/demo/app/_layers/sha256/10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac/link  [sha256:10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac]
repositories/demo/app/_layers/sha256/130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34/link  [sha256:130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34]
repositories/demo/app/_layers/sha256/43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52/link  [sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52]
repositories/demo/app/_layers/sha256/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a/link  [sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a]
repositories/demo/app/_layers/sha256/7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3/link  [sha256:7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3]
repositories/demo/app/_manifests/revisions/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/revisions/sha256/87c6f9c27e32bd748d87918e7922b8b64624808b439579f82e4e6a4553c4ad41/link  [sha256:87c6f9c27e32bd748d87918e7922b8b64624808b439579f82e4e6a4553c4ad41]
repositories/demo/app/_manifests/tags/latest/current/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/latest/index/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/latest/index/sha256/f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41/link  [sha256:f733595976825b0a546d5b9b33de9361370ab3ee909fb6850f1ddec8a2932b41]
repositories/demo/app/_manifests/tags/v2/current/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_manifests/tags/v2/index/sha256/6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898/link  [sha256:6988789308b7ac689b826d1b632c03cf939b57b9f2f730b5b6ccd05cbd42b898]
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/data  (0 bytes)
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/hashstates/sha256/0  (108 bytes)
repositories/demo/app/_uploads/69cf1640-f23c-4cdf-a797-5dcd6f4039ae/startedat  [2026-11-26T20:59:36Z]
repositories/other/mounted/_layers/sha256/43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52/link  [sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52]
";
