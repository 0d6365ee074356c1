//! Per-client limits the guest cannot see: how many uploads one client
//! address may stream at once. The address is `front::client`'s, so
//! behind a trusted load balancer each client behind it counts on its own.

use crate::front::client::ClientInfo;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use berth_oci::route::{self, Route};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Upload requests in flight, per client address.
#[derive(Clone)]
pub struct UploadLimiter {
    /// 0: unlimited.
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

    /// Whether uploads are counted at all (`uploads_per_client = 0` turns
    /// the limit off, as 0 does for every count in the configuration).
    fn limited(&self) -> bool {
        self.per_client > 0
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

/// Whether a request streams upload data: POST, PATCH or PUT to an upload
/// endpoint, as the guest's own route parser reads the path (so a
/// percent-encoded spelling of `uploads` is counted like the plain one).
fn is_upload(method: &Method, path: &str) -> bool {
    matches!(*method, Method::POST | Method::PATCH | Method::PUT)
        && matches!(
            route::parse(path),
            Ok(Route::UploadStart { .. } | Route::Upload { .. })
        )
}

pub async fn limit_uploads(
    State(limiter): State<UploadLimiter>,
    req: Request,
    next: Next,
) -> Response {
    if !limiter.limited() || !is_upload(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(client) = req.extensions().get::<ClientInfo>().and_then(|c| c.addr) else {
        return next.run(req).await;
    };
    let Some(_slot) = limiter.acquire(client) else {
        tracing::warn!(%client, "too many concurrent uploads");
        let mut resp = crate::error_body::error_response(
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

    #[test]
    fn zero_means_unlimited() {
        assert!(!UploadLimiter::new(0).limited());
        assert!(UploadLimiter::new(1).limited());
    }

    #[test]
    fn uploads_are_recognised_as_the_guest_routes_them() {
        let upload = |method: Method, path: &str| is_upload(&method, path);
        assert!(upload(Method::POST, "/v2/app/blobs/uploads/"));
        assert!(upload(Method::PATCH, "/v2/app/blobs/uploads/abc"));
        assert!(upload(Method::PUT, "/v2/team/app/blobs/uploads/abc"));
        assert!(upload(Method::PATCH, "/v2/app/blobs/%75ploads/abc"));
        assert!(!upload(Method::GET, "/v2/app/blobs/uploads/abc"));
        // A repository may be called blobs/uploads; its manifests are not uploads.
        assert!(!upload(Method::PUT, "/v2/blobs/uploads/manifests/latest"));
        assert!(!upload(Method::POST, "/v2/../blobs/uploads/"));
    }
}
