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

/// Black on white, set for each line: half blocks are drawn in the terminal's foreground
/// colour, which is light on a dark terminal — the code would come out inverted, and
/// scanners cannot read an inverted code.
const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";

/// A QR code drawn with half-block characters for a terminal: two modules per character
/// cell, the quiet zone the standard asks for, and its colours set explicitly (black
/// modules on white) so that it scans on dark and light terminals alike.
pub fn terminal(data: &str) -> Result<String, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| e.to_string())?;
    let text = code.render::<unicode::Dense1x2>().quiet_zone(true).build();
    Ok(text
        .lines()
        .map(|line| format!("{BLACK_ON_WHITE}{line}{RESET}"))
        .collect::<Vec<_>>()
        .join("\n"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The terminal rendering, read back as a terminal shows it (every cell's upper and lower
    /// half: foreground where a block is drawn, background elsewhere, in the colours the
    /// escape codes set) and decoded by a QR reader.
    #[test]
    fn the_terminal_code_scans() {
        let uri = "otpauth://totp/otpd:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=otpd&algorithm=SHA1&digits=6&period=30";
        let text = terminal(uri).unwrap();
        let mut rows: Vec<Vec<bool>> = Vec::new(); // true: black
        for line in text.lines() {
            let cells = line
                .strip_prefix(BLACK_ON_WHITE)
                .and_then(|l| l.strip_suffix(RESET))
                .expect("every line sets its colours explicitly");
            let (mut upper, mut lower) = (Vec::new(), Vec::new());
            for c in cells.chars() {
                let (u, l) = match c {
                    '\u{2588}' => (true, true),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                upper.push(u);
                lower.push(l);
            }
            rows.push(upper);
            rows.push(lower);
        }
        // A border of white modules around the code: the quiet zone.
        assert!(rows[0].iter().all(|black| !black));
        assert!(rows.iter().all(|r| !r[0] && !r[r.len() - 1]));
        let scale = 4;
        let (w, h) = (rows[0].len() * scale, rows.len() * scale);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            if rows[y / scale][x / scale] { 0 } else { 255 }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, uri);
    }
}
