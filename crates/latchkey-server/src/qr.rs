//! QR codes for `otpauth://` URIs: a PNG (as a `data:` URL) and an SVG, both with the
//! four-module quiet zone scanners need.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Pixels per QR module in the PNG.
const SCALE: usize = 6;
const QUIET_ZONE: usize = 4;

/// The QR code of `text` as `(data:image/png;base64,..., <svg ...>)`.
pub fn render(text: &str) -> anyhow::Result<(Zeroizing<String>, Zeroizing<String>)> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    let png = Zeroizing::new(encode_png(&code)?);
    Ok((
        Zeroizing::new(format!("data:image/png;base64,{}", STANDARD.encode(png.as_slice()))),
        Zeroizing::new(svg),
    ))
}

/// An 8-bit grayscale PNG: black modules on white.
fn encode_png(code: &QrCode) -> anyhow::Result<Vec<u8>> {
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = Zeroizing::new(vec![0xffu8; side * side]);
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (row, column) = (index / modules + QUIET_ZONE, index % modules + QUIET_ZONE);
        for y in row * SCALE..(row + 1) * SCALE {
            pixels[y * side + column * SCALE..y * side + (column + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side)?;
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_data_url_and_svg() {
        let (png, svg) =
            render("otpauth://totp/Latchkey:a%40b.c?secret=JBSWY3DPEHPK3PXP&issuer=Latchkey").unwrap();
        assert!(png.starts_with("data:image/png;base64,iVBORw0KGgo"), "PNG signature");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
}
