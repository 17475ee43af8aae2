//! The demo's own click on a verification link: it opens the page the email links to, sends its
//! form back with the page's cookie (as a browser would), and reads where the page sent it, all
//! over HTTP against the `herald serve` the demo runs.

use std::time::Duration;

use anyhow::{Context, bail};

/// What redeeming a link over HTTP gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The status of the GET (200: a page with a button; nothing used yet).
    pub page_status: u16,
    /// The status of the POST: 200 with a result page, or 303 to the ticket's target.
    pub post_status: u16,
    /// The result page's heading, or the redirect's `message`.
    pub outcome: String,
    /// The status of opening the link a second time (410: used).
    pub again_status: u16,
}

/// Opens `link`, submits its form, then opens it again. Blocking (ureq): call it off the
/// runtime's threads.
pub fn redeem(link: &str) -> anyhow::Result<Redeemed> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut page = agent.get(link).call().context("opening the link")?;
    let page_status = page.status().as_u16();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("herald-csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("the page set no CSRF cookie")?;
    let html = page.body_mut().read_to_string()?;
    let (Some(action), Some(ticket), Some(csrf)) = (
        attribute(&html, "action=\""),
        attribute(&html, "name=\"ticket\" value=\""),
        attribute(&html, "name=\"csrf\" value=\""),
    ) else {
        bail!("the page at {link} has no form (status {page_status})");
    };
    let base = url::Url::parse(link)?;
    let target = base.join(&action)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("ticket", &ticket)
        .append_pair("csrf", &csrf)
        .finish();
    let mut posted = agent
        .post(target.as_str())
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .context("sending the form")?;
    let post_status = posted.status().as_u16();
    let outcome = match posted.headers().get("location") {
        Some(location) => {
            let location = url::Url::parse(location.to_str()?)?;
            location
                .query_pairs()
                .find(|(k, _)| k == "message")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        }
        None => {
            let html = posted.body_mut().read_to_string()?;
            heading(&html).unwrap_or_default()
        }
    };
    let again_status = agent.get(link).call()?.status().as_u16();
    Ok(Redeemed {
        page_status,
        post_status,
        outcome,
        again_status,
    })
}

/// The value that follows `prefix` up to the next `"`, HTML entities for `&` undone.
fn attribute(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

fn heading(html: &str) -> Option<String> {
    let start = html.find("<h1>")? + 4;
    let end = start + html[start..].find("</h1>")?;
    Some(html[start..end].to_owned())
}
