//! The API server's clock, read from the `Date` header of a request (docs/PROTOCOL.md §5).
//!
//! Used to judge when a finished holder's `--min-hold` ends: that is de-duplication, not
//! mutual exclusion (the work has already stopped), so a wall clock is allowed. The gate also
//! judges the freshness of the controller's Lease with it (`exec::controller_alive`). The server's
//! clock is shared by every candidate, unlike the nodes' clocks; what remains is the header's
//! one-second resolution and one request's latency.

use std::time::Duration;

use kube::client::Body;

use crate::clock::BootInstant;

/// A reading of the API server's clock, and when on our clock it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerTime {
    /// The server's `Date`.
    pub(crate) server: jiff::Timestamp,
    /// When the answer arrived, on CLOCK_BOOTTIME.
    pub(crate) local: BootInstant,
}

impl ServerTime {
    /// The node's wall clock, when the server's cannot be read.
    pub(crate) fn local_wall_clock() -> Self {
        Self {
            server: jiff::Timestamp::now(),
            local: BootInstant::now(),
        }
    }

    /// The server's time now, advanced on our BOOTTIME since the reading.
    pub(crate) fn now(&self) -> jiff::Timestamp {
        advance(
            self.server,
            BootInstant::now().saturating_duration_since(self.local),
        )
    }

    /// The instant on our clock at which the server's clock reaches `server_instant`.
    pub(crate) fn local_instant(&self, server_instant: jiff::Timestamp) -> BootInstant {
        let ahead = server_instant.duration_since(self.server);
        match Duration::try_from(ahead) {
            Ok(ahead) => self.local + ahead,
            // Already past on the server when read.
            Err(_) => self.local,
        }
    }
}

fn advance(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by).ok())
        .unwrap_or(at)
}

/// Parses an HTTP `Date` header (RFC 9110 IMF-fixdate, e.g. `Tue, 01 Dec 2026 09:05:33 GMT`).
pub(crate) fn parse_date(value: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()
}

/// Reads the server's clock with one GET of the pool's Lease (which the workload's role may
/// read), within `timeout`. `None` when it cannot be read.
pub(crate) async fn read(
    client: &kube::Client,
    namespace: &str,
    pool: &str,
    timeout: Duration,
) -> Option<ServerTime> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{pool}");
    let request = http::Request::get(path).body(Body::empty()).ok()?;
    let response = match tokio::time::timeout(timeout, client.send(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            tracing::debug!(?error, "reading the API server's clock failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("reading the API server's clock timed out");
            return None;
        }
    };
    let local = BootInstant::now();
    let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
    let server = parse_date(date)?;
    Some(ServerTime { server, local })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_date("Tue, 01 Dec 2026 09:05:33 GMT").unwrap();
        assert_eq!(t.to_string(), "2026-12-01T09:05:33Z");
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn server_instants_map_onto_our_clock() {
        let local = BootInstant::from_since_boot(Duration::from_secs(1000));
        let server = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let reading = ServerTime { server, local };
        let later = server
            .checked_add(jiff::SignedDuration::from_secs(30))
            .unwrap();
        assert_eq!(
            reading.local_instant(later),
            local + Duration::from_secs(30)
        );
        let earlier = server
            .checked_sub(jiff::SignedDuration::from_secs(30))
            .unwrap();
        assert_eq!(reading.local_instant(earlier), local);
    }
}
