//! The process-wide Prometheus recorder, installed once.
//!
//! One global recorder, not a handle per application: the worker records from many tokio tasks
//! on many threads through the `metrics` macros, and `metrics::with_local_recorder` only covers
//! the current thread, so a per-app recorder would have to be threaded through the pipeline by
//! hand. A `OnceLock` makes [`install`] safe to call from every test or server that builds a
//! worker in the same process; they then share one set of counters (tests assert on deltas or
//! on labels only they produce).

use std::sync::OnceLock;

use herald_worker::metrics::{HISTOGRAMS, describe};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (first call only) and registers Herald's metrics; returns
/// the handle that renders the exposition. Histograms get explicit buckets, so they are exported
/// as Prometheus histograms rather than summaries.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in HISTOGRAMS {
            builder = builder
                .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                .expect("Herald's bucket lists are not empty");
        }
        builder = builder
            .set_buckets_for_metric(
                Matcher::Full(crate::http::HTTP_REQUEST_DURATION_SECONDS.to_owned()),
                crate::http::HTTP_DURATION_BUCKETS,
            )
            .expect("the HTTP bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "Another metrics recorder was installed first; /metrics will not show Herald's metrics."
            );
        }
        describe();
        crate::http::describe();
        handle
    })
}
