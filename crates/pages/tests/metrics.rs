//! The pages' part of `herald serve`'s `/metrics`: redeemed tickets by purpose, and the pages'
//! answers by route and status. A test binary of its own, so no other test's redemptions share
//! the process's Prometheus recorder.

mod common;

use common::{Form, post_at, setup};
use herald_testkit::http::request;
use serde_json::json;

/// The value of the series `name{labels}` in a Prometheus exposition (0 when absent).
fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_redeemed_ticket_is_counted_by_purpose_and_a_reused_link_by_its_status() {
    let s = setup(|_| {}).await;
    let user_id = s.user("mia@example.com", json!({})).await;
    let link = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id}),
        )
        .await;
    let page = s.get(&link, &[]).await;
    let form = Form::of(&page);
    assert_eq!(post_at(s.api.addr, &form, &[], None).await.status, 200);
    assert_eq!(post_at(s.api.addr, &form, &[], None).await.status, 410);
    assert!(s.env.expect_mail(1).await[0].rcpt_to[0].starts_with("mia@"));

    let metrics = request(s.api.addr, "GET", "/metrics", &[], b"").await.body;
    let redeemed = |purpose: &str| {
        sample(
            &metrics,
            &format!("herald_tickets_redeemed_total{{purpose=\"{purpose}\"}}"),
        )
    };
    assert_eq!(redeemed("email_verification"), 1.0, "{metrics}");
    assert_eq!(redeemed("password_change"), 0.0);
    assert_eq!(redeemed("mfa_enrollment"), 0.0);
    let posts = |status: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("herald_http_requests_total{")
                    && l.contains("route=\"/u/email-verification\"")
                    && l.contains("method=\"POST\"")
                    && l.contains(&format!("status=\"{status}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!((posts("200"), posts("410")), (1.0, 1.0), "{metrics}");
}
