//! QR codes of key URIs: SVG and PNG for the API and pages, text for the terminal.

use qrcode::render::{svg, unicode};
use qrcode::{Color, QrCode};

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

/// A greyscale PNG QR code: `scale` pixels per module, with the four-module quiet zone the
/// QR standard asks for.
pub fn png(data: &str, scale: u32) -> Result<Vec<u8>, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| e.to_string())?;
    let modules = u32::try_from(code.width()).map_err(|e| e.to_string())?;
    let colors = code.to_colors();
    let quiet = 4;
    let side = (modules + 2 * quiet) * scale;
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % modules + quiet, i as u32 / modules + quiet);
        for y in my * scale..(my + 1) * scale {
            let row = (y * side) as usize;
            if let Some(span) =
                pixels.get_mut(row + (mx * scale) as usize..row + ((mx + 1) * scale) as usize)
            {
                span.fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}
