//! QR codes of key URIs: SVG for the API and pages, text for the terminal.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

/// An SVG QR code (no XML prolog, so it can be inlined in HTML).
pub fn svg(data: &str) -> Result<String, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| e.to_string())?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    Ok(match image.find("<svg") {
        Some(i) => image.get(i..).unwrap_or(&image).to_owned(),
        None => image,
    })
}

/// A QR code drawn with half-block characters, for a terminal.
pub fn terminal(data: &str) -> Result<String, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| e.to_string())?;
    Ok(code.render::<unicode::Dense1x2>().quiet_zone(true).build())
}
