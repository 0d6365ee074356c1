//! Per-client limits the guest cannot see: how many uploads one client
//! address may stream at once.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Upload requests in flight, per client address.
#[derive(Clone)]
pub struct UploadLimiter {
    per_client: u64,
    in_flight: Arc<Mutex<HashMap<IpAddr, u64>>>,
}

impl UploadLimiter {
    pub fn new(per_client: u64) -> Self {
        Self {
            per_client,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `client`, or `None` when it has all of its slots.
    fn acquire(&self, client: IpAddr) -> Option<Slot> {
        let mut in_flight = self.in_flight.lock().ok()?;
        let count = in_flight.entry(client).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(Slot {
            limiter: self.clone(),
            client,
        })
    }
}

/// Gives its slot back when the request is done, however it ends.
struct Slot {
    limiter: UploadLimiter,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.limiter.in_flight.lock()
            && let Some(count) = in_flight.get_mut(&self.client)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.client);
            }
        }
    }
}

/// Whether a request streams upload data: POST, PATCH or PUT under
/// `/blobs/uploads`.
fn is_upload(req: &Request) -> bool {
    matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT)
        && req.uri().path().contains("/blobs/uploads")
}

pub async fn limit_uploads(
    State(limiter): State<UploadLimiter>,
    req: Request,
    next: Next,
) -> Response {
    if !is_upload(&req) {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let Some(_slot) = limiter.acquire(peer.ip()) else {
        tracing::warn!(client = %peer.ip(), "too many concurrent uploads");
        let mut resp = crate::server::error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            &format!(
                "this client already has {} uploads in flight; retry when one finishes",
                limiter.per_client
            ),
        );
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return resp;
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_client_and_returned() {
        let limiter = UploadLimiter::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limiter.acquire(a).expect("first");
        let _second = limiter.acquire(a).expect("second");
        assert!(limiter.acquire(a).is_none(), "third refused");
        assert!(limiter.acquire(b).is_some(), "other clients unaffected");
        drop(first);
        assert!(limiter.acquire(a).is_some(), "slot returned");
    }
}
