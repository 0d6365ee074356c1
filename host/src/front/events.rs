//! Events derived from the registry's answers: a manifest or blob pushed,
//! mounted, pulled or deleted, handed to `crate::notify`.
//!
//! Innermost around the guest's routes, so the request it sees is the one
//! the guest saw (after a containerd `?ns=` mapping) and the caller is
//! known. Only the request line and the guest's status and headers are
//! read; the event follows the request the way registry:2's does:
//!
//! | request | answer | event |
//! |---|---|---|
//! | `PUT <name>/manifests/<ref>` | 201 | push (media type and size from the store) |
//! | `PUT <name>/blobs/uploads/<id>?digest=`, `POST <name>/blobs/uploads/?digest=` | 201 | push of a blob |
//! | `POST <name>/blobs/uploads/?mount=&from=` | 201 | mount |
//! | `DELETE <name>/manifests/<ref>`, `DELETE <name>/blobs/<digest>` | 202 | delete (and one per tag a manifest took with it) |
//! | `GET <name>/manifests/<ref>`, `GET <name>/blobs/<digest>` | 200 | pull (best-effort) |
//!
//! Push, mount and delete events are in the outbox before the answer goes
//! back; if they cannot be stored the client gets a 503 instead, and its
//! retry (the same push again) records them.

use crate::front::client::{ClientInfo, Scheme};
use crate::notify::Notifier;
use crate::notify::envelope::{self, Action, BLOB_MEDIA_TYPE, Event, RequestRecord, Target};
use crate::sandbox::context::RequestContext;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use berth_oci::Digest;
use berth_oci::route::{self, Query, Reference, Route};
use std::net::SocketAddr;

/// What a request may turn into, decided before it runs.
enum Plan {
    PushManifest {
        name: String,
        tag: Option<String>,
    },
    PushBlob {
        name: String,
        digest: Digest,
    },
    Mount {
        name: String,
        digest: Digest,
        from: String,
    },
    DeleteManifest {
        name: String,
        reference: Reference,
    },
    DeleteBlob {
        name: String,
        digest: Digest,
    },
    PullManifest {
        name: String,
        tag: Option<String>,
    },
    PullBlob {
        name: String,
        digest: Digest,
    },
}

impl Plan {
    fn of(method: &Method, path: &str, query: Option<&str>) -> Option<Plan> {
        let route = route::parse(path).ok()?;
        let query = || Query::parse(query.unwrap_or(""));
        let digest_in = |q: &Query| q.get("digest").and_then(|d| route::digest_of(d).ok());
        let tag_of = |reference: &Reference| match reference {
            Reference::Tag(tag) => Some(tag.clone()),
            Reference::Digest(_) => None,
        };
        Some(match (method, route) {
            (&Method::GET, Route::Manifest { name, reference }) => Plan::PullManifest {
                tag: tag_of(&reference),
                name,
            },
            (&Method::GET, Route::Blob { name, digest }) => Plan::PullBlob { name, digest },
            (&Method::PUT, Route::Manifest { name, reference }) => Plan::PushManifest {
                tag: tag_of(&reference),
                name,
            },
            (&Method::PUT, Route::Upload { name, .. }) => Plan::PushBlob {
                digest: digest_in(&query())?,
                name,
            },
            (&Method::POST, Route::UploadStart { name }) => {
                let query = query();
                match (query.get("mount"), query.get("from")) {
                    (Some(mount), Some(from)) => Plan::Mount {
                        digest: route::digest_of(mount).ok()?,
                        from: from.to_owned(),
                        name,
                    },
                    _ => Plan::PushBlob {
                        digest: digest_in(&query)?,
                        name,
                    },
                }
            }
            (&Method::DELETE, Route::Manifest { name, reference }) => {
                Plan::DeleteManifest { name, reference }
            }
            (&Method::DELETE, Route::Blob { name, digest }) => Plan::DeleteBlob { name, digest },
            _ => return None,
        })
    }

    /// The kind of event it makes.
    fn action(&self) -> Action {
        match self {
            Plan::PushManifest { .. } | Plan::PushBlob { .. } => Action::Push,
            Plan::Mount { .. } => Action::Mount,
            Plan::DeleteManifest { .. } | Plan::DeleteBlob { .. } => Action::Delete,
            Plan::PullManifest { .. } | Plan::PullBlob { .. } => Action::Pull,
        }
    }

    /// The answer that means it happened.
    fn success(&self) -> StatusCode {
        match self {
            Plan::PushManifest { .. } | Plan::PushBlob { .. } | Plan::Mount { .. } => {
                StatusCode::CREATED
            }
            Plan::DeleteManifest { .. } | Plan::DeleteBlob { .. } => StatusCode::ACCEPTED,
            Plan::PullManifest { .. } | Plan::PullBlob { .. } => StatusCode::OK,
        }
    }
}

/// What the request said that events may need, taken before it runs
/// (the guest consumes it) and cheaply: strings are made only for an
/// event that will be sent.
struct Seen {
    client: Option<ClientInfo>,
    peer: Option<SocketAddr>,
    method: Method,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
    caller: Option<String>,
}

impl Seen {
    fn of(req: &Request) -> Seen {
        let headers = req.headers();
        Seen {
            client: req.extensions().get::<ClientInfo>().cloned(),
            peer: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| *peer),
            method: req.method().clone(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            request_id: headers.get(X_REQUEST_ID).cloned(),
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            caller: req
                .extensions()
                .get::<RequestContext>()
                .and_then(|c| c.caller.clone()),
        }
    }

    fn origin(self) -> Origin {
        let client = self.client.as_ref();
        let addr = match (client.and_then(|c| c.addr), self.peer) {
            // registry:2 writes the peer with its port.
            (Some(ip), Some(peer)) if peer.ip() == ip => peer.to_string(),
            (Some(ip), _) => ip.to_string(),
            (None, Some(peer)) => peer.to_string(),
            (None, None) => String::new(),
        };
        let host = client.and_then(|c| c.host.clone()).unwrap_or_default();
        let scheme = match client.map(|c| c.scheme) {
            Some(Scheme::Https) => "https",
            _ => "http",
        };
        let base = if host.is_empty() {
            String::new()
        } else {
            format!("{scheme}://{host}")
        };
        let given_id = text_of(self.request_id.as_ref());
        Origin {
            request: RequestRecord {
                // The id a proxy gave the request, or a fresh one.
                id: if given_id.is_empty() || given_id.len() > 200 {
                    envelope::new_id()
                } else {
                    given_id
                },
                addr,
                host,
                method: self.method.as_str().to_owned(),
                useragent: text_of(self.user_agent.as_ref()),
            },
            actor: self.caller,
            base,
            content_type: text_of(self.content_type.as_ref()),
        }
    }
}

/// What every event of one request shares.
struct Origin {
    request: RequestRecord,
    actor: Option<String>,
    /// `scheme://host` for target URLs (empty without a usable host).
    base: String,
    /// The request's `Content-Type` (a pushed manifest's media type when
    /// the store cannot say).
    content_type: String,
}

impl Origin {
    fn url(&self, name: &str, kind: &str, digest: &str) -> String {
        if self.base.is_empty() || digest.is_empty() {
            return String::new();
        }
        format!("{}/v2/{name}/{kind}/{digest}", self.base)
    }
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

fn text_of(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn content_length(headers: &HeaderMap) -> u64 {
    header_text(headers, header::CONTENT_LENGTH)
        .parse()
        .unwrap_or(0)
}

/// Runs the request, then records what it changed.
pub async fn record(State(notifier): State<Notifier>, req: Request, next: Next) -> Response {
    let Some(plan) = Plan::of(req.method(), req.uri().path(), req.uri().query()) else {
        return next.run(req).await;
    };
    if !notifier.wants(plan.action()) {
        return next.run(req).await;
    }
    if plan.action() == Action::Pull && !notifier.pull_room() {
        // Every queue is full (its receiver is down): count the drop,
        // build nothing.
        let resp = next.run(req).await;
        if resp.status() == plan.success() {
            notifier.pull_dropped();
        }
        return resp;
    }
    let seen = Seen::of(&req);
    // The tags a manifest delete takes with it, asked while they exist.
    let doomed_tags = match &plan {
        Plan::DeleteManifest {
            name,
            reference: Reference::Digest(digest),
        } => match notifier.backends() {
            Some(backends) => backends
                .metadata
                .tags_of(name, digest.as_str())
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    let resp = next.run(req).await;
    if resp.status() != plan.success() {
        return resp;
    }
    let headers = resp.headers();
    let answered_digest = header_text(
        headers,
        header::HeaderName::from_static("docker-content-digest"),
    );
    let origin = seen.origin();
    let event =
        |action, target| notifier.event(action, target, &origin.request, origin.actor.clone());
    match plan {
        Plan::PullManifest { name, tag } => {
            let size = content_length(headers);
            let target = Target {
                media_type: header_text(headers, header::CONTENT_TYPE),
                size,
                length: size,
                url: origin.url(&name, "manifests", &answered_digest),
                digest: answered_digest,
                repository: name,
                tag: tag.unwrap_or_default(),
                ..Target::default()
            };
            notifier.pulled(event(Action::Pull, target));
            resp
        }
        Plan::PullBlob { name, digest } => {
            let size = content_length(headers);
            let target = Target {
                media_type: BLOB_MEDIA_TYPE.to_owned(),
                size,
                length: size,
                url: origin.url(&name, "blobs", digest.as_str()),
                digest: digest.to_string(),
                repository: name,
                ..Target::default()
            };
            notifier.pulled(event(Action::Pull, target));
            resp
        }
        change => {
            // In a task of its own: a client that hangs up now (dropping
            // this future) has still changed the registry, and the events
            // must say so.
            let notifier = notifier.clone();
            let task = tokio::spawn(async move {
                let events =
                    changes(&notifier, change, &origin, answered_digest, doomed_tags).await;
                notifier.record(&events).await
            });
            let stored = task
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match stored {
                Ok(()) => resp,
                Err(why) => {
                    tracing::error!(
                        error = why,
                        "notifications: events not stored; answering 503 so the client retries"
                    );
                    crate::error_body::unavailable(
                        "the registry could not record the change for its notifications; retry",
                    )
                }
            }
        }
    }
}

/// The events of a push, mount or delete the guest answered as done.
async fn changes(
    notifier: &Notifier,
    plan: Plan,
    origin: &Origin,
    answered_digest: String,
    doomed_tags: Vec<String>,
) -> Vec<Event> {
    let event =
        |action, target| notifier.event(action, target, &origin.request, origin.actor.clone());
    match plan {
        Plan::PushManifest { name, tag } => {
            let stored = match notifier.backends() {
                Some(b) if !answered_digest.is_empty() => {
                    b.metadata.get_manifest(&name, &answered_digest).await
                }
                _ => Ok(None),
            };
            let (media_type, size) = match stored {
                Ok(Some(info)) => (info.media_type, info.size),
                Ok(None) => (origin.content_type.clone(), 0),
                Err(e) => {
                    tracing::warn!(error = %e.cause(), repository = name, "notifications: reading a pushed manifest's size");
                    (origin.content_type.clone(), 0)
                }
            };
            let target = Target {
                media_type,
                size,
                length: size,
                url: origin.url(&name, "manifests", &answered_digest),
                digest: answered_digest,
                repository: name,
                tag: tag.unwrap_or_default(),
                ..Target::default()
            };
            vec![event(Action::Push, target)]
        }
        Plan::PushBlob { name, digest } => {
            let target = blob_target(notifier, origin, name, &digest, String::new()).await;
            vec![event(Action::Push, target)]
        }
        Plan::Mount { name, digest, from } => {
            let target = blob_target(notifier, origin, name, &digest, from).await;
            vec![event(Action::Mount, target)]
        }
        Plan::DeleteManifest { name, reference } => {
            let mut events = Vec::new();
            match reference {
                Reference::Digest(digest) => {
                    events.push(event(
                        Action::Delete,
                        Target {
                            digest: digest.to_string(),
                            repository: name.clone(),
                            ..Target::default()
                        },
                    ));
                    for tag in doomed_tags {
                        events.push(event(
                            Action::Delete,
                            Target {
                                repository: name.clone(),
                                tag,
                                ..Target::default()
                            },
                        ));
                    }
                }
                Reference::Tag(tag) => events.push(event(
                    Action::Delete,
                    Target {
                        repository: name,
                        tag,
                        ..Target::default()
                    },
                )),
            }
            events
        }
        Plan::DeleteBlob { name, digest } => {
            let target = Target {
                digest: digest.to_string(),
                repository: name,
                ..Target::default()
            };
            vec![event(Action::Delete, target)]
        }
        Plan::PullManifest { .. } | Plan::PullBlob { .. } => Vec::new(),
    }
}

/// A blob pushed or mounted into `name`: its size from the blob store.
async fn blob_target(
    notifier: &Notifier,
    origin: &Origin,
    name: String,
    digest: &Digest,
    from: String,
) -> Target {
    let size = match notifier.backends() {
        Some(b) => match b.blobs.stat(digest).await {
            Ok(size) => size.unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e.cause(), %digest, "notifications: reading a pushed blob's size");
                0
            }
        },
        None => 0,
    };
    Target {
        media_type: BLOB_MEDIA_TYPE.to_owned(),
        size,
        length: size,
        url: origin.url(&name, "blobs", digest.as_str()),
        digest: digest.to_string(),
        repository: name,
        from_repository: from,
        ..Target::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn plan(method: Method, path: &str, query: Option<&str>) -> Option<Plan> {
        Plan::of(&method, path, query)
    }

    #[test]
    fn requests_that_can_make_events_are_told_apart() {
        assert!(matches!(
            plan(Method::PUT, "/v2/a/b/manifests/v1", None),
            Some(Plan::PushManifest { name, tag: Some(tag) }) if name == "a/b" && tag == "v1"
        ));
        assert!(matches!(
            plan(Method::PUT, &format!("/v2/a/manifests/{DIGEST}"), None),
            Some(Plan::PushManifest { tag: None, .. })
        ));
        let commit = format!("digest={DIGEST}");
        assert!(matches!(
            plan(Method::PUT, "/v2/a/blobs/uploads/0123abcd", Some(&commit)),
            Some(Plan::PushBlob { name, .. }) if name == "a"
        ));
        // A chunk without a digest commits nothing.
        assert!(plan(Method::PUT, "/v2/a/blobs/uploads/0123abcd", None).is_none());
        assert!(plan(Method::PATCH, "/v2/a/blobs/uploads/0123abcd", None).is_none());
        assert!(matches!(
            plan(Method::POST, "/v2/a/blobs/uploads/", Some(&commit)),
            Some(Plan::PushBlob { .. })
        ));
        assert!(plan(Method::POST, "/v2/a/blobs/uploads/", None).is_none());
        let mount = format!("mount={DIGEST}&from=x/y");
        assert!(matches!(
            plan(Method::POST, "/v2/a/blobs/uploads/", Some(&mount)),
            Some(Plan::Mount { from, .. }) if from == "x/y"
        ));
        assert!(matches!(
            plan(Method::DELETE, "/v2/a/manifests/v1", None),
            Some(Plan::DeleteManifest {
                reference: Reference::Tag(_),
                ..
            })
        ));
        assert!(matches!(
            plan(Method::DELETE, &format!("/v2/a/blobs/{DIGEST}"), None),
            Some(Plan::DeleteBlob { .. })
        ));
        assert!(matches!(
            plan(Method::GET, "/v2/a/manifests/v1", None),
            Some(Plan::PullManifest { .. })
        ));
        assert!(matches!(
            plan(Method::GET, &format!("/v2/a/blobs/{DIGEST}"), None),
            Some(Plan::PullBlob { .. })
        ));
        for (method, path) in [
            (Method::HEAD, "/v2/a/manifests/v1"),
            (Method::GET, "/v2/a/tags/list"),
            (Method::GET, "/v2/_catalog"),
            (Method::GET, "/v2/"),
            (Method::GET, "/v2/A/manifests/v1"),
            (Method::GET, "/health"),
        ] {
            assert!(
                plan(method.clone(), path, None).is_none(),
                "{method} {path}"
            );
        }
    }
}
