//! A guest that misbehaves on request, so the host's sandbox can be tested
//! with `berth serve --guest berth_faulty_guest.wasm`:
//!
//! | path | what the guest does |
//! |---|---|
//! | `/v2/` | answers `200 {}` like the registry (so the harness sees a ready server) |
//! | `/trap` | executes `unreachable` |
//! | `/loop` | spins forever |
//! | `/oom` | allocates and touches memory until allocation fails |
//! | `/slow-ok` | does a moderate amount of work, then answers `200` |
//!
//! Anything else gets a `404`.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Iterations of `/slow-ok`'s work: far more than a registry request does,
/// far less than the tests' fuel budget.
const SLOW_OK_ROUNDS: u64 = 20_000_000;

struct Faulty;

impl wasip2::exports::http::incoming_handler::Guest for Faulty {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        match path {
            "/v2" | "/v2/" => respond(out, 200, b"{}"),
            // abort() is the `unreachable` instruction on wasm32.
            "/trap" => std::process::abort(),
            "/loop" => spin(),
            "/oom" => exhaust_memory(),
            "/slow-ok" => {
                let sum = work(SLOW_OK_ROUNDS);
                respond(out, 200, format!("{{\"sum\":{sum}}}").as_bytes());
            }
            _ => respond(out, 404, b"{}"),
        }
    }
}

/// An endless loop the optimizer must keep: every round goes through
/// `black_box`.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

/// Holds on to 1 MiB blocks, each filled (so its pages are really used),
/// until the allocator fails, which aborts the guest.
fn exhaust_memory() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![0xa5; 1 << 20]);
        core::hint::black_box(&mut blocks);
    }
}

/// A little arithmetic per round, kept by `black_box`.
fn work(rounds: u64) -> u64 {
    let mut acc = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..rounds {
        acc = core::hint::black_box(acc.rotate_left(5) ^ i);
    }
    acc
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = [
        ("content-type".to_owned(), b"application/json".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
        (
            "docker-distribution-api-version".to_owned(),
            b"registry/2.0".to_vec(),
        ),
    ];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(status).is_err() {
        return;
    }
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        // Bodies here are tiny, below the 4 KiB a blocking write may carry.
        let _ = stream.blocking_write_and_flush(body);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

wasip2::http::proxy::export!(Faulty);
