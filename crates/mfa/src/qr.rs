//! The enrollment QR code as an inline SVG element: no XML prolog (it goes inside an HTML
//! page), `role="img"` and an `aria-label` for assistive technology, and colours as `fill`
//! attributes only (no `style=`, so a `style-src 'self'` CSP allows it).

use qrcode::QrCode;
use qrcode::render::svg;

/// The QR code of `data` (an otpauth URL) as `<svg role="img" aria-label="…" …>…</svg>`, at
/// least 200 pixels square. `None` only when `data` is too long for any QR code (about 2.9 KB).
pub fn qr_svg(data: &str, aria_label: &str) -> Option<String> {
    let code = QrCode::new(data.as_bytes()).ok()?;
    let rendered = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let element = match rendered.find("<svg") {
        Some(start) => &rendered[start..],
        None => return None,
    };
    let attributes = format!(
        "<svg role=\"img\" aria-label=\"{}\"",
        escape_attribute(aria_label)
    );
    Some(element.replacen("<svg", &attributes, 1))
}

/// Text safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_has_no_prolog_a_role_and_a_label_and_no_style() {
        let svg = qr_svg(
            "otpauth://totp/Herald:bob%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Herald",
            "QR code to scan with an authenticator app",
        )
        .unwrap();
        assert!(
            svg.starts_with(
                "<svg role=\"img\" aria-label=\"QR code to scan with an authenticator app\""
            ),
            "{}",
            &svg[..120]
        );
        assert!(!svg.contains("<?xml"));
        assert!(!svg.contains("style="));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    #[test]
    fn the_label_is_escaped() {
        let svg = qr_svg("x", "a\"><script>alert(1)</script>").unwrap();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("aria-label=\"a&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn data_too_long_for_a_qr_code_gives_none() {
        assert!(qr_svg(&"x".repeat(8000), "label").is_none());
    }
}
