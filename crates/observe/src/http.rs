//! The HTTP server's own metrics (`herald serve`): requests by route, method and status, and
//! their latency. Routes are axum's matched path templates (`/api/v2/users/{id}`), never raw
//! URIs, so the label set stays bounded; a request no route matched is `unmatched`.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

pub const HTTP_REQUESTS_TOTAL: &str = "herald_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "herald_http_request_duration_seconds";

/// Seconds, from 1 ms to 10 s.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(crate) fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests answered, by route template, method and status code."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template, method and status code."
    );
}

/// Records one answered request.
pub fn record_http(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
}
