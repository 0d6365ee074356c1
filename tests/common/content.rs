//! What tests push: deterministic bytes for blobs (one generator for all)
//! and OCI image manifests (one builder).

/// `len` deterministic pseudo-random bytes; different seeds give different
/// bytes.
pub fn bytes(seed: impl AsRef<[u8]>, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Filler::new(seed).fill(&mut out);
    out
}

/// The generator behind [`bytes`], for content too large to hold at once
/// (test image layers): SplitMix64 seeded with FNV-1a of the seed. Fast,
/// deterministic, and incompressible enough for layer sizes to mean
/// something.
pub struct Filler(u64);

impl Filler {
    pub fn new(seed: impl AsRef<[u8]>) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in seed.as_ref() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h)
    }

    /// The generator started at `state` itself: a seeded random number
    /// source whose printed seed replays a run (tests/crash.rs).
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with the next bytes of the sequence.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A descriptor: `{"mediaType", "digest", "size"}`.
pub fn descriptor(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// The one manifest builder: an OCI image manifest over a config and
/// layers, plus whatever top-level fields a test adds (annotations,
/// subject, artifactType, or a wrong value on purpose).
pub struct Manifest {
    doc: serde_json::Value,
}

impl Manifest {
    /// An image whose config blob is `digest` (`size` bytes), no layers yet.
    pub fn image(config_digest: &str, config_size: usize) -> Self {
        Self {
            doc: serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config_digest, config_size),
                "layers": [],
            }),
        }
    }

    /// Appends a layer of media type `OCI_LAYER`.
    pub fn layer(self, digest: &str, size: usize) -> Self {
        self.layer_descriptor(descriptor(OCI_LAYER, digest, size))
    }

    /// Appends a layer descriptor as given.
    pub fn layer_descriptor(mut self, layer: serde_json::Value) -> Self {
        if let Some(layers) = self.doc["layers"].as_array_mut() {
            layers.push(layer);
        }
        self
    }

    /// Sets (or replaces) a top-level field.
    pub fn field(mut self, key: &str, value: serde_json::Value) -> Self {
        self.doc[key] = value;
        self
    }

    pub fn json(&self) -> serde_json::Value {
        self.doc.clone()
    }

    /// Compact JSON, what a client would push.
    pub fn bytes(&self) -> Vec<u8> {
        self.doc.to_string().into_bytes()
    }
}
