//! The HTTP(S) accept loop and the per-request pipeline: identity, auth, accounting, faults,
//! authorization, dispatch.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::app::{self, App, Response};
use crate::errors::ApiError;
use crate::faults::Verdict;
use crate::rbac::{self, Attributes, RbacSnapshot, UserInfo};
use crate::tls::TlsMaterial;
use crate::{admin, discovery, handlers, router, watch as watch_stream};

/// The identity faults and accounting key on: the request's User-Agent.
pub fn client_identity(req: &http::Request<Incoming>) -> String {
    req.headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// Whether `user` may do `attrs` (system:masters always may; RBAC decides for others).
pub fn authorized(app: &App, user: &UserInfo, attrs: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    if attrs.non_resource_path.is_some() {
        // The default system:discovery and system:public-info-viewer bindings.
        return user.groups.iter().any(|g| g == "system:authenticated");
    }
    if matches!(
        attrs.api_group.as_str(),
        "authorization.k8s.io" | "authentication.k8s.io"
    ) && attrs.resource.starts_with("selfsubject")
    {
        // system:basic-user lets every authenticated user ask about itself.
        return true;
    }
    rbac::authorize(user, attrs, &rbac_snapshot(app))
}

/// The stored RBAC objects, for one authorization decision.
pub fn rbac_snapshot(app: &App) -> RbacSnapshot {
    let list = |key: &str| -> Vec<serde_json::Value> { app.store.list(key, None, None).0 };
    RbacSnapshot {
        roles: list("rbac.authorization.k8s.io/roles"),
        cluster_roles: list("rbac.authorization.k8s.io/clusterroles"),
        role_bindings: list("rbac.authorization.k8s.io/rolebindings"),
        cluster_role_bindings: list("rbac.authorization.k8s.io/clusterrolebindings"),
    }
}

fn forbidden(user: &UserInfo, attrs: &Attributes) -> ApiError {
    let message = rbac::forbidden_message(user, attrs);
    ApiError::forbidden(&attrs.api_group, &attrs.resource, &attrs.name, message)
}

fn authenticate(app: &App, req: &http::Request<Incoming>) -> Result<UserInfo, ApiError> {
    if !app.auth {
        return impersonate(req, crate::auth::anonymous_admin());
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    let user = app
        .tokens
        .lookup(token.trim())
        .ok_or_else(ApiError::unauthorized)?;
    impersonate(req, user)
}

/// `kubectl --as`: masters may act as another user (kube-apiserver checks the `impersonate`
/// verb; here only system:masters holds it).
fn impersonate(req: &http::Request<Incoming>, user: UserInfo) -> Result<UserInfo, ApiError> {
    let Some(name) = req
        .headers()
        .get("Impersonate-User")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(user);
    };
    if !user.groups.iter().any(|g| g == "system:masters") {
        return Err(ApiError::forbidden(
            "",
            "users",
            name,
            format!(
                "users \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                user.username
            ),
        ));
    }
    if let Some(sa) = name.strip_prefix("system:serviceaccount:")
        && let Some((ns, sa_name)) = sa.split_once(':')
    {
        return Ok(crate::auth::service_account_user(ns, sa_name));
    }
    let mut groups: Vec<String> = req
        .headers()
        .get_all("Impersonate-Group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Ok(UserInfo {
        username: name.to_string(),
        groups,
    })
}

/// Serves one request, logging it at debug level.
async fn dispatch(app: Arc<App>, req: http::Request<Incoming>) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let client = client_identity(&req);
    let resp = serve_request(app, req).await;
    tracing::debug!(%method, %uri, %client, status = resp.status().as_u16(), "request");
    resp
}

async fn serve_request(app: Arc<App>, req: http::Request<Incoming>) -> Response {
    let client = client_identity(&req);
    let path = req.uri().path().to_string();
    let query = router::query_map(req.uri().query());
    if path.starts_with(admin::PREFIX) {
        let method = req.method().clone();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return admin::serve(&app, &method, &path, &query, &body).await;
    }
    let info = router::parse(req.method(), &path, &query);
    // Discovery, OpenAPI and health checks are counted apart from resource reads.
    let verb = info
        .as_ref()
        .map_or("discovery", |i| i.verb.as_str())
        .to_string();
    app.accounting.record(&client, &verb);
    let user = match authenticate(&app, &req) {
        Ok(u) => u,
        Err(e) => return app::error(&e),
    };
    app.faults.wait_blackhole(&client).await;
    match app.faults.verdict(&client) {
        Verdict::Serve { latency } => tokio::time::sleep(latency).await,
        Verdict::Fail { latency, code } => {
            tokio::time::sleep(latency).await;
            let err = match code {
                429 => ApiError::too_many_requests(),
                503 => ApiError::service_unavailable(),
                _ => ApiError::internal("injected fault"),
            };
            return app::error(&err);
        }
    }
    let attrs = match &info {
        Some(i) => Attributes {
            verb: i.verb.clone(),
            api_group: i.group.clone(),
            resource: i.resource.clone(),
            subresource: i.subresource.clone(),
            namespace: i.namespace.clone(),
            name: i.name.clone(),
            non_resource_path: None,
        },
        None => Attributes {
            verb: "get".into(),
            non_resource_path: Some(path.clone()),
            ..Default::default()
        },
    };
    if app.auth && !authorized(&app, &user, &attrs) {
        return app::error(&forbidden(&user, &attrs));
    }
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header(http::header::ACCEPT);
    let content_type = header(http::header::CONTENT_TYPE);
    let Some(info) = info else {
        return discovery::serve(&app, &path)
            .unwrap_or_else(|| app::error(&ApiError::path_not_found()));
    };
    if info.verb == "watch" {
        return watch_stream::serve(&app, &info, &query, &accept, &client).await;
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return app::error(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    // kube-apiserver's default field manager is the User-Agent's product name.
    let default_manager = client.split('/').next().unwrap_or("unknown").to_string();
    let call = handlers::Call {
        info: &info,
        query: &query,
        body: &body,
        content_type: &content_type,
        accept: &accept,
        default_manager,
    };
    handlers::handle(&app, call, &user).await
}

async fn serve_connection<I>(app: Arc<App>, io: I, mut restart: watch::Receiver<u64>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(dispatch(app, req).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        res = conn => {
            if let Err(error) = res {
                tracing::debug!(?error, "connection ended with an error");
            }
        }
        // Restart: dropping the connection future closes the socket mid-flight.
        _ = restart.changed() => {}
    }
}

/// A listening server; dropping it stops accepting and drops every connection.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://HOST:PORT` or `https://...`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves until the returned handle is dropped.
pub async fn start(
    app: Arc<App>,
    addr: SocketAddr,
    tls: Option<TlsMaterial>,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let _ = app.url.set(url.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config));
    let restart = app.faults.subscribe_restart();
    let app2 = app.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(?error, "accept failed");
                    continue;
                }
            };
            while conns.try_join_next().is_some() {}
            let _ = stream.set_nodelay(true);
            let app = app2.clone();
            let mut restart = restart.clone();
            restart.mark_unchanged();
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                tracing::trace!(%peer, "connection");
                match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => serve_connection(app, tls, restart).await,
                        Err(error) => tracing::debug!(?error, "TLS handshake failed"),
                    },
                    None => serve_connection(app, stream, restart).await,
                }
            });
        }
    });
    Ok(Running { addr, url, task })
}
