//! The tray's pictures, one per state (drawn by `icons/make-icons.sh`), and their
//! pixels for the platform's tray.

use clawdock_core::status::StateName;

/// The PNG of a state's tray icon.
pub fn png(state: StateName, stopping: bool) -> &'static [u8] {
    if stopping {
        return include_bytes!("../../../icons/tray-stopping.png");
    }
    match state {
        StateName::Unavailable => include_bytes!("../../../icons/tray-missing.png"),
        StateName::Absent => include_bytes!("../../../icons/tray-absent.png"),
        StateName::Stopped => include_bytes!("../../../icons/tray-stopped.png"),
        StateName::Probing | StateName::Starting => {
            include_bytes!("../../../icons/tray-starting.png")
        }
        StateName::Error => include_bytes!("../../../icons/tray-error.png"),
        StateName::Ready => include_bytes!("../../../icons/tray-ready.png"),
    }
}

/// A picture as 8-bit RGBA, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// The pixels of a PNG; a blank pixel if it cannot be read (the tray still shows
/// its menu), said in the log.
pub fn pixels(png: &[u8]) -> Pixels {
    decode(png).unwrap_or_else(|e| {
        tracing::error!(error = %e, "unreadable tray icon");
        Pixels {
            width: 1,
            height: 1,
            rgba: vec![0; 4],
        }
    })
}

fn decode(bytes: &[u8]) -> Result<Pixels, png::DecodingError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let size = reader
        .output_buffer_size()
        .ok_or(png::DecodingError::LimitsExceeded)?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf)?;
    buf.truncate(frame.buffer_size());
    let rgba = match frame.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        // Expanded by the transformation above.
        png::ColorType::Indexed => return Err(png::DecodingError::LimitsExceeded),
    };
    Ok(Pixels {
        width: frame.width,
        height: frame.height,
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_s_icon_is_a_64_px_picture_with_colour_and_transparency() {
        for stopping in [false, true] {
            for state in [
                StateName::Unavailable,
                StateName::Absent,
                StateName::Stopped,
                StateName::Probing,
                StateName::Starting,
                StateName::Error,
                StateName::Ready,
            ] {
                let p = decode(png(state, stopping)).expect("decodes");
                assert_eq!((p.width, p.height), (64, 64), "{state:?}");
                assert_eq!(p.rgba.len(), 64 * 64 * 4);
                assert!(p.rgba.chunks(4).any(|px| px[3] == 0), "transparent corners");
                assert!(p
                    .rgba
                    .chunks(4)
                    .any(|px| px[3] == 255 && px[..3] != [0, 0, 0]));
            }
        }
    }
}
