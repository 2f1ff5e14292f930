//! The pickup code as a QR code, drawn on the server as inline SVG markup: no
//! script, no image request, nothing the content security policy blocks (the
//! drawing uses presentation attributes, not inline styles).

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light margin around the symbol, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// An `<svg>` element showing `text` as a QR code, announced to screen readers
/// as an image with `label`. `None` only if `text` cannot be encoded (it is
/// far longer than a pickup code).
pub fn svg(text: &str, label: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let size = width + 2 * QUIET_ZONE;
    let mut path = String::new();
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == Color::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"qr\" role=\"img\" aria-label=\"{}\" \
         viewBox=\"0 0 {size} {size}\" width=\"240\" height=\"240\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>",
        escape(label)
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pickup_code_draws_as_an_labelled_svg_image() {
        let svg = svg("ABCD2345", "QR \"code\" <ABCD-2345>").unwrap();
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-label=\"QR &quot;code&quot; &lt;ABCD-2345&gt;\""));
        assert!(svg.contains("<path d=\"M"));
        assert!(!svg.contains("style="));
    }
}
